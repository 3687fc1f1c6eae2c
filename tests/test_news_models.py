"""News models (NRMS, NAML, LSTUR ini/con, AWRS) on the tiny MIND fixture: training steps, evaluation,
padding invariance, the word-piece title input, and the AWRS leakage test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recbole.utils import init_seed

from recbole_llm.config import Config
from recbole_llm.data import create_dataset
from recbole_llm.metrics import register_metrics
from recbole_llm.metrics.news import SINGLE_CLASS
from recbole_llm.model.news_recommender import AWRS, LSTUR, NAML, NRMS
from recbole_llm.news import NewsTrainer, news_data_preparation
from recbole_llm.news.data import (
    CANDIDATE_MASK,
    ImpressionEvalDataLoader,
    ImpressionTable,
    impression_table,
)
from recbole_llm.news.engagement import EngagementFeatures
from recbole_llm.utils import properties_dir

NEWS_DATA = Path(__file__).resolve().parent / "data" / "news"
SMALL = {
    "num_heads": 2,
    "head_dim": 8,
    "filter_num": 16,
    "attention_dim": 8,
    "category_dim": 8,
    "news_dim": 16,
    "engagement_dim": 4,
    "time2vec_dim": 8,
    "user_attention_hidden": [8],
    "train_batch_size": 16,
    "eval_batch_size": 8,
    "learning_rate": 0.01,
}
CASES = [
    (NRMS, {}),
    (NAML, {}),
    (LSTUR, {"long_term": "ini"}),
    (LSTUR, {"long_term": "con"}),
    (AWRS, {}),
    (AWRS, {"awrs_legacy_quirks": True}),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("news")
    return {
        "data_path": str(root / "data"),
        "text_cache_dir": str(root / "cache"),
        "checkpoint_dir": str(root / "saved"),
    }


def news_config(model: type, folders: dict[str, str], dataset: str = "mind-small-sample", **overrides) -> Config:
    """Config of a news model; the base yaml is passed explicitly until Config merges the MRO's yamls."""
    register_metrics()
    files = [str(properties_dir() / "model" / name) for name in ("NewsRecommender.yaml", f"{model.__name__}.yaml")]
    settings = {
        **folders,
        "raw_data_path": str(NEWS_DATA),
        "epochs": 1,
        "state": "ERROR",
        "show_progress": False,
        "use_gpu": False,
        "seed": 7,
        **SMALL,
        **overrides,
    }
    config = Config(model, dataset, config_file_list=files, config_dict=settings)
    init_seed(config["seed"], True)
    return config


def built(model_class: type, folders, **overrides):
    config = news_config(model_class, folders, **overrides)
    train, valid, _ = news_data_preparation(config, create_dataset(config))
    return config, model_class(config, train._dataset), train, valid


@pytest.mark.parametrize("model_class, overrides", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_trains_and_evaluates_per_impression(model_class, overrides, folders):
    config, model, train, valid = built(model_class, folders, **overrides)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _, batch in zip(range(3), train):
        loss = model.calculate_loss(batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())]
    assert len(changed) >= len(before) // 2, f"most parameters should train, changed: {changed}"
    result = NewsTrainer(config, model).evaluate(valid, load_best_model=False)
    for key in ("impauc", "globalauc", "impmrr", "impmrrfirst", "impndcg@5", "impndcg@10"):
        assert 0.0 <= result[key] <= 1.0
    assert result[SINGLE_CLASS] >= 0


@pytest.mark.parametrize("model_class, overrides", CASES[:5], ids=lambda v: getattr(v, "__name__", str(v)))
def test_scores_do_not_depend_on_padding_or_batch_neighbours(model_class, overrides, folders):
    _, model, _, valid = built(model_class, folders, **overrides)
    model.eval()
    batch = next(iter(valid))
    with torch.no_grad():
        together = model.predict(batch)
        for row in range(len(batch)):
            alone = model.predict(batch[torch.tensor([row])])
            width = int(batch[CANDIDATE_MASK][row].sum())
            assert torch.allclose(alone[0, :width], together[row, :width], atol=1e-5)


@pytest.mark.parametrize("legacy", [False, True])
def test_awrs_user_vectors_see_batch_neighbours_only_with_legacy_quirks(legacy, folders):
    """The released code attends over the batch axis: a user vector then changes with the other impressions."""
    _, model, _, _ = built(AWRS, folders, awrs_legacy_quirks=legacy)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    history, candidates = torch.randn(4, 5, 20, generator=generator), torch.randn(4, 3, 20, generator=generator)
    mask = torch.ones(4, 5, dtype=torch.bool)
    with torch.no_grad():
        together = model.candidate_user(history, mask, candidates)[0]
        alone = model.candidate_user(history[:1], mask[:1], candidates[:1])[0]
    assert torch.allclose(together, alone, atol=1e-5) != legacy


def test_wordpiece_title_input_reads_minilm_embedding_table(folders):
    _, model, _, _ = built(NRMS, folders, title_encoder="plm_input", title_length=12)
    assert model.titles.words.weight.shape == (30522, 384)
    assert not model.titles.words.weight.requires_grad
    assert model.titles.token_ids.shape[1] == 12 and bool((model.titles.token_ids > 0).any())


def test_unknown_title_encoder_names_the_allowed_values(folders):
    with pytest.raises(ValueError, match="title_encoder must be one of plm_pooled_frozen, plm_input"):
        built(NRMS, folders, title_encoder="glove")


# ------------------------------------------------------------------------------------------ AWRS leakage
def _mutated_after(table: ImpressionTable, cutoff: float) -> ImpressionTable:
    """Every impression at or after ``cutoff``: labels flipped and items shifted to other news."""
    row_impression = torch.searchsorted(table.offsets, torch.arange(len(table.items)), right=True) - 1
    later = table.times[row_impression] >= cutoff
    items = torch.where(later, (table.items % 50) + 1, table.items)
    labels = torch.where(later, 1 - table.labels, table.labels)
    return ImpressionTable(**{**table.__dict__, "items": items, "labels": labels})


def test_awrs_features_and_scores_before_t_ignore_every_later_impression(folders):
    config, model, train, _ = built(AWRS, folders)
    model.eval()
    table = impression_table(train._dataset, int(config["max_history"]))
    cutoff = float(table.times.quantile(0.5))
    args = {"matrix_size": 5, "bucket": 3600, "lookback_hours": 1.0}
    original = EngagementFeatures(table, model.n_items, **args)
    mutated = EngagementFeatures(_mutated_after(table, cutoff), model.n_items, **args)
    early_times = table.times[table.times < cutoff]
    every_item = torch.arange(1, model.n_items).repeat(len(early_times), 1)
    for a, b in zip(original(early_times, every_item), mutated(early_times, every_item)):
        assert torch.equal(a, b)  # codes, clicks and recency of every news item
    late_times = table.times[table.times >= cutoff + 2 * 3600]  # positive control: later features do change
    late_items = torch.arange(1, model.n_items).repeat(len(late_times), 1)
    assert any(not torch.equal(a, b) for a, b in zip(original(late_times, late_items), mutated(late_times, late_items)))
    batch = next(iter(ImpressionEvalDataLoader(config, train._dataset, table)))  # the earliest impressions
    early_rows = torch.nonzero(batch["timestamp"].double() < cutoff).view(-1)
    assert len(early_rows) > 0
    with torch.no_grad():
        model.engagement = original
        before = model.predict(batch[early_rows])
        model.engagement = mutated
        after = model.predict(batch[early_rows])
    assert torch.equal(before, after)


def test_news_trainer_fits_and_tests_the_best_checkpoint(folders):
    config, model, train, valid = built(NRMS, folders)
    test = news_data_preparation(config, create_dataset(config))[2]
    trainer = NewsTrainer(config, model)
    best_score, best_result = trainer.fit(train, valid, saved=True, show_progress=False)
    assert best_score == best_result["impauc"]
    result = trainer.evaluate(test, load_best_model=True)
    assert set(result) >= {"impauc", "globalauc", "impmrr", "impmrrfirst", "impndcg@5", "impndcg@10"}


def test_dkn_named_dataset_converts_and_loads(folders):
    config = news_config(NRMS, folders, dataset="dkn-bing-news")
    train_ds, valid_ds, test_ds = create_dataset(config).build()
    tables = [impression_table(ds, 50) for ds in (train_ds, valid_ds, test_ds)]
    lines = (NEWS_DATA / "dkn-bing-news" / "raw_test.txt").read_text().splitlines()
    clicking_users = {line.split("\t")[0] for line in lines if line.split("\t")[2] == "1"}
    assert len(tables[2]) == len(clicking_users)  # one test impression per user with a click
    valid_users = set(tables[1].users.tolist())
    assert len(tables[1]) == len(valid_users) > 0  # one validation impression per user, carved from raw_train
    assert not set(tables[1].impression_ids.tolist()) & set(tables[2].impression_ids.tolist())
    assert not set(tables[1].items.tolist()) & set(tables[2].items.tolist())  # test news never in raw_train
    assert bool((tables[2].history > 0).any())


def test_category_diversity_of_news_categories(folders):
    config, model, _, valid = built(NAML, folders, metrics=["ImpAUC", "ImpCategoryDiversity"])
    result = NewsTrainer(config, model).evaluate(valid, load_best_model=False)
    assert 0.0 <= result["impcategorydiversity@5"] <= 1.0 and 0.0 <= result["impcategorydiversity@10"] <= 1.0


def test_finetune_title_encoder_trains_only_its_last_layers(folders):
    _, model, train, _ = built(NRMS, folders, title_encoder="plm_finetune", finetune_layers=1, title_length=12)
    layers = model.titles.encoder.encoder.layer
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert not model.titles.encoder.get_input_embeddings().weight.requires_grad
    last_before = [p.detach().clone() for p in layers[-1].parameters()]
    first_before = [p.detach().clone() for p in layers[0].parameters()]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    loss = model.calculate_loss(next(iter(train)))
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(last_before, layers[-1].parameters()))
    assert all(torch.equal(a, b) for a, b in zip(first_before, layers[0].parameters()))


def test_finetune_layers_out_of_range_is_one_clear_error(folders):
    with pytest.raises(ValueError, match="finetune_layers must be between 0 and 6"):
        built(NRMS, folders, title_encoder="plm_finetune", finetune_layers=9)


def _news_benchmark_script():
    import importlib.util

    from conftest import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("news_benchmark", PROJECT_ROOT / "benchmarks" / "news.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_news_benchmark_report_keeps_datasets_and_variants_run_by_earlier_commands(tmp_path):
    """``benchmarks/news.py quality --datasets=D --variants=plain`` reports every dataset with stored results and
    both variants (looked up, not run): a later partial command does not drop earlier results from news.md."""
    from recbole_llm.benchmark.store import ResultStore

    script = _news_benchmark_script()
    store = ResultStore(tmp_path / "news.jsonl")
    store.add({"kind": "news-run", "key": "a", "dataset": "dkn-bing-news", "model": "NRMS"})
    store.add({"kind": "news-random", "key": "b", "dataset": "mind-small-sample", "model": "random"})
    args = script.parse_args(["quality", "--datasets=mind-small", "--variants=plain", "--models=NRMS"])
    scope = script.report_scope(args, store)
    assert scope.datasets == ["mind-small", "dkn-bing-news", "mind-small-sample"] and scope.report_only
    labels = sorted(label for label, _, _ in script.variants(scope))
    assert labels == sorted([*script.MODELS, *(f"{m}+POPK" for m in script.MODELS)])
    assert not args.report_only and args.datasets == ["mind-small"]  # the command itself runs what it asked


def test_news_benchmark_skips_popk_runs_where_popk_adds_no_item():
    """On a dataset without times (no earlier bucket) POPK appends nothing, so its runs would copy the plain ones:
    they are not run, the plain ones are, and the report says why the +POPK rows are missing."""
    script = _news_benchmark_script()
    args = script.parse_args(["quality", "--datasets=dkn-bing-news", "--models=NRMS"])
    none = {"popk": 2, "samples": 100, "mean_items": 0.0, "share_with_any": 0.0}
    some = {**none, "mean_items": 1.5, "share_with_any": 0.9}
    assert script.without_inert_popk(args, "dkn-bing-news", none).variants == ["plain"]
    assert script.without_inert_popk(args, "mind-small-sample", some).variants == ["plain", "popk"]
    assert args.variants == ["plain", "popk"]  # the command's own arguments are left alone
    assert "they are not run" in "".join(script.coverage_lines(none))
    assert "not run" not in "".join(script.coverage_lines(some)) and script.coverage_lines(None) == []
