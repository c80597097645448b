"""Several server processes, on one machine or many, as one chat room over Redis.

``chat-server --backplane redis://HOST:PORT[/DB]`` makes the server a node of
a cluster: its hub is a :class:`ClusterHub`, which publishes every broadcast
to one Redis channel and delivers what the other nodes publish.  Without
``--backplane`` none of this is imported.

Modules: ``codec`` (the messages, sans-IO), ``publisher`` (the bounded queue
and the thread that publishes in pipelines), ``leases`` (names, live nodes
and reaping in Redis), ``directory`` (this node's copy of the others'
members), ``link`` (the threads and the up/partitioned state), ``hub``,
``errors`` (imports no Redis: the server names the error without loading it).
"""
