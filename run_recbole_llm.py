"""Train and evaluate a recbole-llm or RecBole model: same flags as RecBole's run_recbole.py.

python run_recbole_llm.py --model=ReviewGNN --dataset=amazon-beauty
python run_recbole_llm.py --model=LightGCN --epochs=1          # ml-100k, bundled with RecBole
python run_recbole_llm.py --compare=LightGCN,BPR --seeds=3     # benchmark table + chart
"""

import sys

from recbole_llm.cli import main

if __name__ == "__main__":
    sys.exit(main())
