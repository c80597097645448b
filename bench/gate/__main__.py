import sys

from bench.gate import main

sys.exit(main())
