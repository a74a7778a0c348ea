import sys

from market_mlops.dev.bench.run import main

sys.exit(main())
