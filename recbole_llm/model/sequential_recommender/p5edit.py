r"""P5Edit: a P5-style generative sequential recommender (OpenP5 prompts, sequential indexing, constrained beam search).

Reference: OpenP5 (``agiresearch/OpenP5``; Xu et al., SIGIR 2024), the platform behind the poster's
arithmetic-task editing study (issue #17, ``recbole_llm.editing``). Each training row of RecBole's
augmented sequences (history prefix -> next item) becomes a prompt from one of OpenP5's ten seen
sequential templates, and the language model learns to generate the next item's number (items are
numbered 1001, 1002, ... in first-appearance order: OpenP5's sequential indexing). At evaluation one
named template (``test_prompt``: ``seen:0`` or ``unseen:0``) is filled in, beam search constrained to a
trie of valid item numbers returns ``beam_size`` distinct items, and :meth:`P5Edit.full_sort_predict`
gives their beam scores (-inf for every other item), so RecBole's evaluator computes Hit/NDCG@k.

``arith_mix`` > 0 adds that many arithmetic questions (``recbole_llm.editing.arithmetic``) per
recommendation prompt to every training batch: the joint-training arm of the editing experiment.
Our decisions: the output is the item number alone (OpenP5's output template prefixes the dataset
name); ``train_prefixes_per_user`` (via :class:`~recbole_llm.editing.trainer.PrefixBudgetMixin`)
keeps only each user's most recent training prefixes, to fit a CPU budget.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_llm.editing.arithmetic import ArithmeticTask
from recbole_llm.editing.backbone import LanguageModel
from recbole_llm.editing.indexing import FIRST_INDEX, sequential_numbers
from recbole_llm.editing.prompts import SEEN_TEMPLATES, TEMPLATES, parse_prompt_choice, render
from recbole_llm.editing.trainer import PrefixBudgetMixin
from recbole_llm.editing.trie import Trie


class P5Edit(SequentialRecommender):
    """Prompt -> item number with a seq2seq or causal LM; see the module docstring."""

    input_type = InputType.POINTWISE
    trainer_mixins = (PrefixBudgetMixin,)

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.USER_ID = config["USER_ID_FIELD"]
        self.dataset_label = str(config["dataset"])
        self.sample_num = int(config["sample_num"])
        self.beam_size = int(config["beam_size"])
        self.beam_batch_size = int(config["beam_batch_size"])
        self.arith_mix = float(config["arith_mix"])
        if self.beam_size < max(config["topk"]):
            raise ValueError(f"beam_size ({self.beam_size}) must be >= the largest topk ({max(config['topk'])})")
        self.set_test_prompt(config["test_prompt"])
        self.lm = LanguageModel(
            config["backbone"],
            config["backbone_tokenizer"],
            config["random_backbone"] or {},
            config["max_prompt_tokens"],
        )
        inter = dataset.inter_feat
        self.item_numbers = sequential_numbers(
            inter[self.ITEM_SEQ].numpy(), inter[self.ITEM_SEQ_LEN].numpy(), inter[self.ITEM_ID].numpy(), self.n_items
        )
        self.item_targets = [[]] + [self.lm.target_tokens(str(n)) for n in self.item_numbers[1:]]
        self.token_to_item = {tuple(tokens): item for item, tokens in enumerate(self.item_targets) if tokens}
        self.trie = Trie(self.item_targets[1:])
        self.arithmetic = ArithmeticTask(FIRST_INDEX, FIRST_INDEX + self.n_items - 2, int(config["arith_max_addend"]))

    def set_test_prompt(self, choice: str) -> None:
        """Evaluate with OpenP5 template ``choice`` (``seen:0`` ... ``unseen:0``) from now on."""
        kind, number = parse_prompt_choice(choice)
        self.test_template = TEMPLATES[kind][number]

    def prompts(self, interaction, templates: list[str]) -> list[str]:
        """One prompt per row: ``templates[row]`` filled with the user and the numbers of the history items."""
        users = interaction[self.USER_ID].tolist()
        sequences = interaction[self.ITEM_SEQ].tolist()
        lengths = interaction[self.ITEM_SEQ_LEN].tolist()
        return [
            render(template, self.dataset_label, user, [str(self.item_numbers[i]) for i in sequence[:length]])
            for template, user, sequence, length in zip(templates, users, sequences, lengths)
        ]

    def calculate_loss(self, interaction) -> torch.Tensor:
        rows = len(interaction)
        picks = torch.randint(len(SEEN_TEMPLATES), (self.sample_num, rows)).tolist()
        prompts, targets = [], []
        for pick in picks:  # sample_num prompts per row, each from a random seen template (OpenP5's sample_num)
            prompts += self.prompts(interaction, [SEEN_TEMPLATES[p] for p in pick])
            targets += [self.item_targets[i] for i in interaction[self.ITEM_ID].tolist()]
        n_arith = int(round(self.arith_mix * len(prompts)))
        if n_arith:
            seed = int(torch.randint(2**31 - 1, (1,)))
            for question, answer in self.arithmetic.examples(n_arith, seed):
                prompts.append(question)
                targets.append(self.lm.target_tokens(answer))
        return self.lm.loss(prompts, targets)

    def predict(self, interaction) -> torch.Tensor:
        raise NotImplementedError("P5Edit ranks by constrained beam search: use full-sort evaluation (mode: full)")

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Beam scores of the ``beam_size`` generated items, -inf for every other item: [rows, n_items].

        Users are searched ``beam_batch_size`` at a time: each step of the search holds
        users x beams x vocabulary scores (RecBole gives a sequential model ``eval_batch_size`` users at once).
        """
        prompts = self.prompts(interaction, [self.test_template] * len(interaction))
        scores = torch.full((len(prompts), self.n_items), -np.inf, device=self.device)
        for start in range(0, len(prompts), self.beam_batch_size):
            answers, beam_scores = self.lm.beam_search(
                prompts[start : start + self.beam_batch_size], self.trie, self.beam_size
            )
            rows, items, values = [], [], []
            for row, row_answers in enumerate(answers):
                for beam, tokens in enumerate(row_answers):
                    item = self.token_to_item.get(tokens)
                    if item is not None:  # always, since the trie holds only item numbers
                        rows.append(start + row)
                        items.append(item)
                        values.append(beam_scores[row, beam])
            if rows:
                scores[rows, items] = torch.stack(values).to(scores.dtype)
        return scores
