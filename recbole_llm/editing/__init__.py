"""Editing a P5-style generative recommender by task arithmetic (issue #17).

- :mod:`.prompts`: OpenP5's sequential prompt templates (10 seen, 1 unseen).
- :mod:`.indexing`: OpenP5's sequential item indexing (numbers from 1001 in first-appearance order).
- :mod:`.trie`: the trie of valid item-number token sequences that constrains beam search.
- :mod:`.backbone`: the language model (MiniLM encoder-decoder by default, any local seq2seq or causal LM).
- :mod:`.arithmetic`: the arithmetic task over the item-number range.
- :mod:`.task_vector`: task vectors (Ilharco et al., ICLR 2023).
- :mod:`.trainer`: the trainer mixin that sizes the training prompts to a CPU budget.
- :mod:`.experiment`: rec-only vs rec + lambda * tau_arith vs negation vs joint training, one command.

The RecBole model is :class:`recbole_llm.model.sequential_recommender.p5edit.P5Edit`.
"""
