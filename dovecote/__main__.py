import sys

from dovecote.cli import main

sys.exit(main())
