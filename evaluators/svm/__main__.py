"""`python -m evaluators.svm --benchmark NAME --ckpt CKPT --data-root DATA [--tiny] ...`

One benchmark of this family through the shared job CLI (`evaluators.suite.cli`), alone or
under `torchrun --nproc_per_node N -m evaluators.svm ...`.
"""

import sys

from evaluators.suite.cli import family_benchmarks, main

sys.exit(main(sys.argv[1:], benchmarks=family_benchmarks("evaluators.svm")))
