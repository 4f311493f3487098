"""xaifast.cmap: the CMSL compiler against zennit.cmap (the oracle, skipped when zennit is absent)."""

import importlib
import importlib.util
import pickle
import random
import re
import sys
import types
import warnings

import numpy as np
import pytest

from xaifast import cmap as xc
from xaifast import image as xi
from xaifast.cmap import CMSLError, ColorMap, LazyColorMapCache


def _load_zennit_cmap():
    """zennit/cmap.py without running zennit/__init__.py (which needs torchvision); None if absent."""
    spec = importlib.util.find_spec("zennit")
    if spec is None or not spec.submodule_search_locations:
        return None
    if "_zennit_oracle" not in sys.modules:
        stand_in = types.ModuleType("_zennit_oracle")  # a package of zennit's files under another name
        stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules["_zennit_oracle"] = stand_in
    return importlib.import_module("_zennit_oracle.cmap")


@pytest.fixture(scope="module")
def zc():
    module = _load_zennit_cmap()
    if module is None:
        pytest.skip("zennit is not installed")
    return module


BUILTINS = {
    "gray": "000,fff", "wred": "fff,f00", "wblue": "fff,00f", "hot": "000,f00,ff0,fff", "cold": "000,00f,0ff",
    "coldnhot": "0ff,00f,80:000,f00,ff0,fff", "bwr": "00f,80:fff,f00", "france": "0055a4,80:fff,ef4135",
    "seismic": "0000d0,80:d0d0d0,d00000", "coolio": "00d0d0,80:d0d0d0,d000d0", "coleus": "00d000,80:d0d0d0,d000d0",
}

ACCEPTED = list(BUILTINS.values()) + [
    "000,fff", "FFF,000", "000,fff,", "80 : fff , 000", "0:000,0:fff,fff", "7:000, 9:ffffff", "000,a0:f00,fff",
    "1f:fff,f0f,000", "f:000,f:fff", "000,80:f00,80:0f0,80:00f,fff", "ff:000,ff:fff", "000,1 :fff", "000,1: fff",
    " \t000,\nfff\n", "000,111,222,333,444,555,666,777,888,999,aaa,bbb,ccc,ddd,eee,fff", "000000,ffffff",
    "AbCdEf,123", "10:000,20:fff", "00:abc,ff:def", "5:000,5:fff", "000,fff\u3000", "000,\u00a0fff,\x1c",
    "8:123,456,789,c0:abc,def", "000,f00,0f0,00f,fe:fff,fff", "000\r\n,\r\nfff",
]

# source -> offset where it is wrong (for an unfinished index: the end of the source)
REJECTED = {
    "this": 0, "fff": 3, ",,,": 0, "111:111:111": 3, "fffff,fffff": 3, "f,f": 1, "fffffffff": 6, "ff:": 3,
    "ff:fff,00:000": 7, "": 0, "000": 3, ",000,fff": 0, "000,,fff": 4, "000 fff": 4, "#fff,#000": 0,
    "ff0000ff,000": 6, "ff00001,000": 6, "100:fff,000": 3, "f f f": 2, "80:fff,40:000": 7, "g00,000": 0,
    "000,fff:80": 7, "80:": 3, ":fff,000": 0, "nonsense": 0, "000,fff,,": 8, "000;fff": 3, "0x000,fff": 1,
    "000,80:f00,fff,40:0f0": 15, "  ": 2, "\n": 1, "000\n,,fff": 5, "1:000": 5, "000,1:": 6, "000,fff,\u00e9": 8,
    "\uff10\uff10\uff10,fff": 0, "000,fff,1": 9, "000,fff,12:": 11, "000,80:ff0,7f:fff": 11, "000:fff": 3,
}

X = np.concatenate([np.linspace(-0.25, 1.25, 701), np.arange(256) / 255.0, [np.nan, np.inf, -np.inf]])
LEVELS = [1.0, 2.0, 0.5, 0.0, -1.0, 3.7, -0.3, 1e6, np.inf]


def _assert_same_map(ours, theirs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ours(X), theirs(X))
        np.testing.assert_array_equal(ours(X.astype(np.float32)), theirs(X.astype(np.float32)))
        for level in LEVELS:
            got, want = ours.palette(level), theirs.palette(level)
            assert got.dtype == want.dtype == np.uint8 and got.shape == want.shape == (256, 3)
            np.testing.assert_array_equal(got, want, err_msg=f"level={level}")


def _assert_points_at(err, source, position):
    assert err.source == source and err.position == position
    assert f"position {position}" in str(err) and "`source`" in str(err)
    caret_line = str(err).splitlines()[-1]
    start = source.rfind("\n", 0, position) + 1
    assert caret_line == " " * (4 + position - start) + "^"


def test_public_names_match(zc):
    for name in ("CMapToken", "ColorNode", "ColorMap", "LazyColorMapCache"):
        assert hasattr(xc, name)
    assert xc.CMapToken._fields == zc.CMapToken._fields
    assert xc.ColorNode._fields == zc.ColorNode._fields
    assert isinstance(ColorMap.source, property) and ColorMap.source.fset is not None


@pytest.mark.parametrize("source", ACCEPTED, ids=repr)
def test_accepted_sources_match_zennit(zc, source):
    ours, theirs = ColorMap(source), zc.ColorMap(source)
    assert ours.source == theirs.source == source
    np.testing.assert_array_equal(ours._indices, theirs._indices)
    np.testing.assert_array_equal(ours._colors, theirs._colors)
    _assert_same_map(ours, theirs)


@pytest.mark.parametrize("source,position", REJECTED.items(), ids=[repr(s) for s in REJECTED])
def test_rejected_sources_match_zennit(zc, source, position):
    with pytest.raises(RuntimeError) as theirs:
        zc.ColorMap(source)
    assert type(theirs.value) is RuntimeError
    with pytest.raises(RuntimeError) as ours:
        ColorMap(source)
    assert isinstance(ours.value, CMSLError) and isinstance(ours.value, ValueError)
    assert str(ours.value).startswith("Compilation of ColorMap failed!")
    _assert_points_at(ours.value, source, position)


def test_builtin_colormaps_match_zennit(zc):
    zennit_image_sources = {name: zc.ColorMap(src).source for name, src in BUILTINS.items()}
    assert list(xi.CMAPS) == list(BUILTINS) and len(xi.CMAPS) == 11
    for name in xi.CMAPS:
        assert xi.CMAPS[name].source == BUILTINS[name] == zennit_image_sources[name]
        _assert_same_map(xi.CMAPS[name], zc.ColorMap(BUILTINS[name]))


def test_random_sources_match_zennit(zc):
    """Same tokens, same verdict, same colours, same error location on 3000 random sources."""
    rng = random.Random(1234)
    hexdigits, noise = "0123456789abcdefABCDEF", "0f8:, \n#g"

    def item():
        index = rng.choice(["", "", f"{rng.randint(0, 15):x}:", f"{rng.randint(0, 255):02x}:", "80 : "])
        return index + "".join(rng.choice(hexdigits) for _ in range(rng.choice([3, 6, 3, 6, 2, 4])))

    accepted = 0
    for _ in range(3000):
        source = rng.choice([",", ", ", ",\n", " ,"]).join(item() for _ in range(rng.randint(0, 5)))
        source += rng.choice(["", "", ",", " "])
        for _ in range(rng.choice([0, 0, 1, 2])):  # near misses: insert, delete or replace a character
            at = rng.randint(0, len(source))
            source = source[:at] + rng.choice(["", rng.choice(noise)]) + source[at + rng.randint(0, 1):]
        assert xc._lex(source) == zc.ColorMap._lex(source), source
        try:
            theirs = zc.ColorMap(source)
        except RuntimeError as err:
            cause = str(err.__cause__)
            with pytest.raises(CMSLError) as ours:
                ColorMap(source)
            reason = ours.value.reason
            if "at least 2" in cause:
                assert "at least 2" in reason, source
            elif "not ordered" in cause:
                assert "ascend" in reason, source
            else:  # zennit names the token; for an unfinished index we point at the end instead
                their_pos = int(re.search(r"pos=(\d+)", cause).group(1))
                assert ours.value.position == their_pos or (
                    "ends early" in reason and ours.value.position == len(source)), source
            continue
        accepted += 1
        _assert_same_map(ColorMap(source), theirs)
    assert 200 < accepted < 2800  # the generator must exercise both sides


def test_source_setter_recompiles_and_keeps_old_map_on_error():
    cmap = ColorMap("000,fff")
    cmap.source = "fff,000"
    assert cmap.source == "fff,000" and cmap.palette()[0].tolist() == [255, 255, 255]
    with pytest.raises(RuntimeError, match="position 4"):
        cmap.source = "fff,,000"
    assert cmap.source == "fff,000" and cmap.palette()[0].tolist() == [255, 255, 255]


def test_source_must_be_a_string():
    for bad in (5, None, b"000,fff", ["000", "fff"]):
        with pytest.raises(TypeError, match="source"):
            ColorMap(bad)


def test_multiline_error_reports_line_and_column():
    with pytest.raises(CMSLError, match=r"position 9 \(line 2, column 5\)") as err:
        ColorMap("000,\nfff,#00")
    _assert_points_at(err.value, "000,\nfff,#00", 9)


def test_error_pickles():
    with pytest.raises(CMSLError) as err:
        ColorMap("00x,fff")
    again = pickle.loads(pickle.dumps(err.value))
    assert isinstance(again, RuntimeError) and str(again) == str(err.value)


def test_call_shapes_and_clipping():
    cmap = ColorMap("000,fff")
    assert cmap(np.zeros((2, 3, 4))).shape == (2, 3, 4, 3)
    np.testing.assert_array_equal(cmap(np.array([-5.0, 7.0])), [[0, 0, 0], [1, 1, 1]])
    assert np.isnan(cmap(np.array(np.nan))).all()


def test_palette_level_checks():
    cmap = xi.get_cmap("bwr")
    with pytest.raises(ValueError, match="level"):
        cmap.palette(float("nan"))
    with pytest.raises(TypeError, match="level"):
        cmap.palette("high")
    np.testing.assert_array_equal(cmap.palette(np.float32(2.0)), cmap.palette(2.0))
    assert (cmap.palette(0.0) == [254, 254, 255]).all()
    assert cmap.palette(-1.0)[0].tolist() == [255, 0, 0]


def test_lazy_cache_behaviour(zc):
    for cache_type in (LazyColorMapCache, zc.LazyColorMapCache):
        cache = cache_type({"a": "000,fff", "b": "nonsense"})
        first = cache["a"]
        assert cache["a"] is first and len(cache) == 2 and list(cache) == ["a", "b"]
        assert "a" in cache and "z" not in cache
        with pytest.raises(KeyError, match="z"):
            cache["z"]
        with pytest.raises(RuntimeError):  # errors surface on access, not at construction
            cache["b"]
        cache["a"] = "fff,000"  # a compiled entry is recompiled in place
        assert cache["a"] is first and first.source == "fff,000"
        with pytest.raises(RuntimeError):
            cache["a"] = "000,,fff"
        assert cache["a"] is first and first.source == "fff,000"
        cache["c"] = "f00,00f"
        assert cache["c"].palette()[0].tolist() == [255, 0, 0]
        del cache["a"]
        assert list(cache) == ["b", "c"] and len(cache) == 2
        with pytest.raises(KeyError):
            cache["a"]


def test_lazy_cache_rejects_non_string_sources_and_unhashable_lookups():
    cache = LazyColorMapCache({})
    with pytest.raises(TypeError, match="value"):
        cache["x"] = 3
    assert [1] not in cache
