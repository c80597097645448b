"""chatbench server: a threaded multi-user TCP chat server."""
