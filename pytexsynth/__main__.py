import sys

from pytexsynth_cli import main

sys.exit(main())
