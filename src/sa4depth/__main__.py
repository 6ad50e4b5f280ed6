import sys

from sa4depth.cli import main

sys.exit(main())
