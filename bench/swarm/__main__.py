import sys

from bench.swarm import main

sys.exit(main())
