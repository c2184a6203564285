import sys

from musicaffect.cli import main

sys.exit(main())
