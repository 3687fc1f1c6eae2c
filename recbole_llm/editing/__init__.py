"""Editing a P5-style generative recommender by task arithmetic (issue #17).

- :mod:`.prompts`: OpenP5's sequential prompt templates (10 seen, 1 unseen).
- :mod:`.indexing`: OpenP5's sequential item indexing (numbers from 1001 in first-appearance order).
- :mod:`.trie`: the trie of valid item-number token sequences that constrains beam search.
- :mod:`.backbone`: the language model (MiniLM encoder-decoder by default, any local seq2seq or causal LM).
- :mod:`.arithmetic`: the arithmetic task over the item-number range.
- :mod:`.task_vector`: task vectors (Ilharco et al., ICLR 2023).
- :mod:`.trainer`: the trainer mixin that sizes the training prompts to a CPU budget.
- :mod:`.experiment`: rec-only vs rec + lambda * tau_arith vs negation vs joint training, one command.

The RecBole model is :class:`recbole_llm.model.sequential_recommender.p5edit.P5Edit`:

    python run_recbole_llm.py --model=P5Edit --dataset=ml-100k --epochs=1
    python -m recbole_llm.editing.experiment --dataset=ml-100k --seeds=3 [--device=cuda]

Measured on one CPU thread (all-MiniLM-L6-v2 encoder-decoder, 49.0 M parameters): a training step of
64 prompts takes about 6 s with 10 history items (8 s with 20), and beam search (20 beams) about 0.18 s
per user, so one full-sort evaluation of ml-100k (943 users) takes about 3 minutes.
"""
