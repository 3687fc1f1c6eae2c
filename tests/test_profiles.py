"""P4R profile generation: prompt, parser, template and transformers backends, resumable store, CLI.

The transformers backend runs through its real code path on a tiny random-weight LLaMA built
here from a config, with a word-level tokenizer trained on the prompt and item texts (no download).
"""
from __future__ import annotations

import json

import pytest
import torch

import recbole_llm  # noqa: F401  (compatibility layer)
from recbole_llm.config import Config
from recbole_llm.data import create_dataset
from recbole_llm.profiles import (
    ProfileSettingsMismatch,
    PromptTemplate,
    TemplateBackend,
    collect_item_attributes,
    generate_profiles,
    parse_profile,
    profile_path,
    read_profiles,
)
from recbole_llm.profiles.attributes import split_fingerprint
from recbole_llm.profiles.backends import TransformersBackend
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
    answer = ("**Summary:** A 1977 space opera.\nWho would like it: Fans of adventure.\n"
              "Why: Classic, widely loved.\n\nSummary: repeated junk")
    assert parse_profile(answer) == {"summary": "A 1977 space opera.", "audience": "Fans of adventure.",
                                     "reasoning": "Classic, widely loved."}
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
        generate_profiles(config, dataset, train, backend=TemplateBackend(batch_size=20),
                          on_batch=stop_after_two_batches)
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
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]",
                                        bos_token="<s>", eos_token="</s>")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    ))
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
        tmp_path_factory.mktemp("tiny_chat_llm"), corpus + ["system user assistant :"],
        chat_template="{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                      "{% if add_generation_prompt %}<s> assistant : {% endif %}",
    )
    return plain, chat


def test_transformers_backend_interrupted_and_resumed_with_real_generation(small_data, tiny_llm, tmp_path):
    _, dataset, train = small_data
    config = _config(tmp_path, profile_backend="transformers", profile_llm=tiny_llm[0],
                     profile_max_new_tokens=6, profile_batch_size=8)

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
    assert header["model"] == tiny_llm[0] and header["prompt_hash"] == PromptTemplate.load().text_hash
    assert header["decoding"]["max_new_tokens"] == 6 and header["decoding"]["do_sample"] is False
    # Random weights never produce the three headers: retried once, then kept raw with a flag.
    record = next(iter(records.values()))
    assert record["parsed"] is False and record["attempts"] == 2 and record["raw"].strip()
    assert result.unparsed == result.generated


def test_transformers_profile_file_of_another_split_is_refused(small_data, tiny_llm, tmp_path):
    """LLM profiles quote the training split's feedback: a file made on another split (another
    seed) is refused with both fingerprints, like the template backend's files."""
    _, dataset, train = small_data
    path = tmp_path / "llm.jsonl"
    config = _config(tmp_path, profile_backend="transformers", profile_llm=tiny_llm[0], profile_file=str(path),
                     profile_max_new_tokens=2)
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
    backend = TransformersBackend(tiny_llm[1], PromptTemplate.load(), max_new_tokens=4, batch_size=4)
    assert backend.use_chat_template
    items = collect_item_attributes(config, dataset, train)[:3]
    prompt = backend._prompt_text(items[0], retry=False)
    assert prompt.startswith("<s> system :") and prompt.rstrip().endswith("assistant :")
    real_generate = backend._generate_texts
    seen = []

    def fake_second_attempt(prompts):
        seen.append(prompts)
        if len(seen) == 1:
            return real_generate(prompts)  # the real (unparsable) answers
        return [" A film.\nWho would like it: film fans.\nWhy: good reviews."] * len(prompts)

    monkeypatch.setattr(backend, "_generate_texts", fake_second_attempt)
    records = backend.generate(items)
    assert all(p.endswith("Summary:") for p in seen[1])  # the retry prefills the answer
    assert [r["parsed"] for r in records] == [True] * 3 and records[0]["attempts"] == 2
    assert records[0]["summary"] == "A film." and records[0]["reasoning"] == "good reviews."


def test_profiles_cli_generates_and_resumes(tmp_path, capsys):
    from recbole_llm.cli import main

    args = ["profiles", "--dataset=ml-100k", f"--profile_dir={tmp_path}", "--item_inter_num_interval=[250,inf)",
            "--state=ERROR"]
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
