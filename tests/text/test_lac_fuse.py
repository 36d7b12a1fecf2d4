"""paddleopt.text.lac_fuse: LAC's GRUs rewritten to Paddle's batched fusion_gru.

Identity with the original LAC on 3,000 sentences is in test_lac_large.py (runtime
"native-batched-gru"); here: the rewrite really happens, and leaves paddle's mode alone.
"""
from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("LAC") is None,
                                reason="the lac package (model files) is not installed")


def _ops(program_bytes: bytes) -> list[tuple[str, dict]]:
    """(type, GRU attributes) per op of a serialized program, read without switching paddle
    to static mode."""
    from paddle.base import core

    desc = core.ProgramDesc(program_bytes)  # the op descs live as long as this
    block = desc.block(0)
    ops = [block.op(i) for i in range(block.op_size())]
    return [(op.type(), {a: op.attr(a) for a in ("use_seq", "is_reverse") if op.has_attr(a)})
            for op in ops]


@pytest.mark.parametrize("mode", ["seg", "lac"])
def test_every_gru_becomes_a_batched_fusion_gru(mode):
    import paddle

    from paddleopt.text.lac import default_model_dir
    from paddleopt.text.lac_fuse import batched_gru_model
    from paddleopt.text.lac_vocab import LacModelFiles

    assert paddle.in_dynamic_mode()
    program, params = batched_gru_model(LacModelFiles.from_dir(
        default_model_dir(mode)).checkpoint_dir)
    assert paddle.in_dynamic_mode()  # the rewrite switched to static mode and back
    ops = _ops(program)
    types = [kind for kind, _ in ops]
    assert types.count("fusion_gru") == 4 and "gru" not in types
    assert types.count("mul") == 1  # only the emission layer's fc is left
    fused = [attrs for kind, attrs in ops if kind == "fusion_gru"]
    assert [attrs["use_seq"] for attrs in fused] == [False] * 4
    assert [attrs["is_reverse"] for attrs in fused] == [False, True, False, True]
    assert len(params) > 1_000_000


def test_other_layouts_are_left_alone(tmp_path):
    from paddleopt.text.lac_fuse import batched_gru_model

    assert batched_gru_model(str(tmp_path)) is None


def test_same_words_as_the_per_text_kernel():
    from paddleopt.text.lac import LAC

    texts = ["百度是一家高科技公司", "这个产品很好，物流也快", "我爱北京天安门",
             "酒店的服务态度非常差，房间也很小", "LAC是个优秀的分词工具"] * 3
    batched = LAC(mode="seg", use_onednn=False)
    per_text = LAC(mode="seg", use_onednn=False, batched_gru=False)
    assert batched.run(texts) == per_text.run(texts)
    assert batched.run(texts[0]) == ["百度", "是", "一家", "高科技", "公司"]
