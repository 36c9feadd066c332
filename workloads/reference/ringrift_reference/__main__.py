import sys

from ringrift_reference.jobs import main

sys.exit(main())
