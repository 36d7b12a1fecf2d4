import sys

from paddleopt.cli.main import main

sys.exit(main())
