"""Colour maps written in CMSL, the colour-map specification language of zennit.

A CMSL source is a comma-separated list of colours, each optionally preceded by the palette
index (0..255) it sits at::

    '000,fff'                   black -> white
    '00f,80:fff,f00'            blue -> white at index 0x80 (128) -> red
    '0ff, 00f, 80:000, f00'     whitespace (newlines too) between tokens is ignored

Grammar (accepted and rejected sources are the same as ``zennit.cmap.ColorMap``'s):

* colour: 6 hex digits ``rrggbb`` or 3 hex digits ``rgb`` (each digit doubled: ``a3f`` = ``aa33ff``);
  case-insensitive.
* index: 1 or 2 hex digits followed by ``:``; a single digit is doubled too (``8:`` = 0x88 = 136,
  ``80:`` = 128).
* a run of hex digits is cut greedily into 6-digit colours, then one 3-digit colour, then a 1-2
  digit index: ``ff0000ff`` is the colour ``ff0000`` followed by the index ``ff``, which needs a
  ``:`` (so ``'ff0000ff,000'`` is rejected), and ``100:`` is the colour ``100`` followed by ``:``.
* one trailing comma is allowed, a leading or doubled comma is not; at least two colours.
* indices never decrease from left to right; equal indices make a hard edge.

Placement of the nodes: the first colour always sits at 0 (and also at its own index, if it has
one, so the map is constant below it); an un-indexed last colour sits at 255; un-indexed colours in
between are spread evenly between their indexed neighbours, truncated to integers
(``'000,f00,ff0,fff'`` -> 0, 85, 170, 255). A sentinel node at 256 repeats the last colour.
Colours are interpolated linearly in 0..255 RGB.

Invalid sources raise :class:`CMSLError`, a ``RuntimeError`` (the type zennit raises) that is also a
``ValueError``; its message says where the source is wrong and draws a caret under the spot.
"""

from typing import NamedTuple

import numpy as np

__all__ = ["CMapToken", "ColorNode", "ColorMap", "LazyColorMapCache", "CMSLError"]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

# Parser states: what the next meaningful token may be.
_WANT_ITEM, _WANT_COLON, _WANT_COLOUR, _WANT_COMMA = range(4)
_EXPECTED = {
    _WANT_ITEM: "a colour ('rgb' or 'rrggbb') or an index ('i:' or 'ii:')",
    _WANT_COLON: "':' after the index",
    _WANT_COLOUR: "a colour ('rgb' or 'rrggbb') after the index",
    _WANT_COMMA: "',' before the next colour",
}


class CMapToken(NamedTuple):
    """One lexical token of a CMSL source.

    Attributes:
        type (str): ``'longcolor'``, ``'shortcolor'``, ``'index'``, ``'adsep'`` (``:``), ``'sep'``
            (``,``), ``'whitespace'`` or ``'error'`` (the rest of the line from a bad character).
        value (str): the text of the token.
        pos (int): offset of its first character in the source.

    Example:
        >>> CMapToken('sep', ',', 3).pos
        3
    """

    type: str
    value: str
    pos: int


class ColorNode(NamedTuple):
    """A colour placed at a palette index.

    Attributes:
        index (int or None): palette index 0..256, ``None`` while a parsed colour has no index yet.
        value (numpy.ndarray): ``(3,)`` int RGB in 0..255.

    Example:
        >>> ColorNode(128, np.array([255, 255, 255])).index
        128
    """

    index: object
    value: np.ndarray


class CMSLError(RuntimeError, ValueError):
    """Invalid CMSL source. A ``RuntimeError`` like zennit's compile error, and a ``ValueError``.

    Attributes:
        source (str or None): the source that failed.
        position (int or None): offset in ``source`` where it is wrong.
        reason (str or None): what is wrong there, without the location.

    Example:
        >>> try:
        ...     ColorMap('000,,fff')
        ... except CMSLError as err:
        ...     err.position
        4
    """

    def __init__(self, message, source=None, position=None, reason=None):
        super().__init__(message)
        self.source, self.position, self.reason = source, position, reason


def _caret(source, position):
    """The line of ``source`` holding ``position``, with a ``^`` under that character."""
    start = source.rfind("\n", 0, position) + 1
    stop = source.find("\n", position)
    line = source[start:] if stop < 0 else source[start:stop]
    # one printable character per source character keeps the caret aligned
    shown = "".join(c if c.isprintable() else " " for c in line)
    return f"    {shown}\n    {' ' * (position - start)}^"


def _error(reason, source, position):
    """Build the :class:`CMSLError` for ``reason`` at ``position`` of ``source``."""
    where = f"position {position}"
    if "\n" in source:
        line = source.count("\n", 0, position) + 1
        where += f" (line {line}, column {position - source.rfind(chr(10), 0, position)})"
    message = (f"Compilation of ColorMap failed! Invalid CMSL in `source` at {where}: {reason}\n"
               f"{_caret(source, position)}")
    return CMSLError(message, source, position, reason)


def _lex(source):
    """Cut ``source`` into :class:`CMapToken` s, the same tokens zennit's lexer produces."""
    tokens, pos, end = [], 0, len(source)
    while pos < end:
        char = source[pos]
        if char in _HEX_DIGITS:
            stop = pos
            while stop < end and source[stop] in _HEX_DIGITS:
                stop += 1
            while pos < stop:  # 'fffffffff' -> 'ffffff' (colour) + 'fff' (colour)
                left = stop - pos
                width, kind = (6, "longcolor") if left >= 6 else (3, "shortcolor") if left >= 3 else (left, "index")
                tokens.append(CMapToken(kind, source[pos:pos + width], pos))
                pos += width
            continue
        if char == ":" or char == ",":
            tokens.append(CMapToken("adsep" if char == ":" else "sep", char, pos))
            stop = pos + 1
        elif char.isspace():
            stop = pos + 1
            while stop < end and source[stop].isspace():
                stop += 1
            tokens.append(CMapToken("whitespace", source[pos:stop], pos))
        else:  # a bad character swallows the rest of its line
            stop = source.find("\n", pos)
            stop = end if stop < 0 else stop
            tokens.append(CMapToken("error", source[pos:stop], pos))
        pos = stop
    return tokens


def _rgb(text):
    """``'a3f'`` -> [170, 51, 255]; ``'0055a4'`` -> [0, 85, 164]."""
    if len(text) == 3:
        text = "".join(digit * 2 for digit in text)
    return np.array([int(text[k:k + 2], 16) for k in (0, 2, 4)])


def _parse(tokens, source):
    """Turn tokens into ``[(ColorNode, offset of its index or colour), ...]``; raise on bad order."""
    nodes, state, index, index_pos = [], _WANT_ITEM, None, None
    for token in tokens:
        kind = token.type
        if kind == "whitespace":
            continue
        if state == _WANT_ITEM and kind == "index":
            state, index_pos = _WANT_COLON, token.pos
            index = int(token.value * (2 if len(token.value) == 1 else 1), 16)  # '8' -> 0x88
        elif state == _WANT_COLON and kind == "adsep":
            state = _WANT_COLOUR
        elif state in (_WANT_ITEM, _WANT_COLOUR) and kind in ("longcolor", "shortcolor"):
            located = index_pos if state == _WANT_COLOUR else token.pos
            nodes.append((ColorNode(index if state == _WANT_COLOUR else None, _rgb(token.value)), located))
            state, index = _WANT_COMMA, None
        elif state == _WANT_COMMA and kind == "sep":
            state = _WANT_ITEM
        else:
            shown = f"character {token.value[0]!r}" if kind == "error" else repr(token.value)
            reason = f"unexpected {shown}; expected {_EXPECTED[state]}"
            if state == _WANT_COMMA and kind in ("index", "shortcolor", "longcolor"):
                reason += " (a colour has exactly 3 or 6 hex digits)"
            raise _error(reason, source, token.pos)
    if state in (_WANT_COLON, _WANT_COLOUR):
        raise _error(f"the source ends early; expected {_EXPECTED[state]}", source, len(source))
    return nodes


def _place(nodes, source):
    """Palette indices ``(K,)`` int and colours ``(K, 3)`` int of the nodes, sentinel 256 included."""
    if len(nodes) < 2:
        raise _error(f"a colour map needs at least 2 colours, found {len(nodes)}", source, len(source))
    (first, _), rest = nodes[0], nodes[1:]
    placed = [ColorNode(0, first.value)]
    if first.index is not None and first.index > 0:
        placed.append(first)  # constant colour on [0, first.index]
    waiting = []  # un-indexed colours, spread out once the next indexed node is known
    for number, (node, located) in enumerate(rest):
        if node.index is None:
            if number < len(rest) - 1:
                waiting.append(node)
                continue
            node = ColorNode(255, node.value)
        elif node.index < placed[-1].index:
            raise _error(f"index {node.index} (0x{node.index:02x}) is below the index {placed[-1].index} before "
                         "it; indices have to ascend from left to right", source, located)
        low, high = placed[-1].index, node.index
        # 2 waiting between 0 and 255: t = 1/3, 2/3 -> 85, 170 (truncated)
        for t, pending in zip(np.linspace(0.0, 1.0, len(waiting) + 2)[1:-1], waiting):
            placed.append(ColorNode(int(low * (1.0 - t) + high * t), pending.value))
        waiting.clear()
        placed.append(node)
    placed.append(ColorNode(256, placed[-1].value))
    return np.array([node.index for node in placed]), np.stack([node.value for node in placed])


def _compile(source):
    """CMSL ``source`` -> (indices, colours), or :class:`CMSLError`."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str of CMSL such as '00f,80:fff,f00', got {type(source).__name__}")
    return _place(_parse(_lex(source), source), source)


class ColorMap:
    """A linear colour map compiled from CMSL source (see the module docstring for the language).

    Args:
        source (str): CMSL, e.g. ``'00f,80:fff,f00'``.

    Raises:
        CMSLError: ``source`` is not valid CMSL (the message gives the position).
        TypeError: ``source`` is not a str.

    Example:
        >>> cmap = ColorMap('000,fff')
        >>> cmap(np.array([0.0, 1.0])).tolist()
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
        >>> cmap.palette()[128].tolist()
        [128, 128, 128]
    """

    def __init__(self, source):
        self._source = None
        self.source = source

    @property
    def source(self):
        """str: the CMSL source. Assigning a new one recompiles the map; on a compile error the
        exception propagates and the map keeps its old source and colours."""
        return self._source

    @source.setter
    def source(self, value):
        self._indices, self._colors = _compile(value)
        self._source = value

    def __repr__(self):
        return f"ColorMap({self._source!r})"

    def __call__(self, x):
        """Map values in ``[0, 1]`` to RGB in ``[0, 1]``.

        Args:
            x (numpy.ndarray): any shape; clipped to ``[0, 1]``. NaN gives NaN.

        Returns:
            numpy.ndarray: ``x.shape + (3,)`` float64, linear interpolation between the nodes.

        Example:
            >>> ColorMap('000,fff')(np.array(0.5)).tolist()
            [0.5, 0.5, 0.5]
        """
        position = (np.asarray(x) * 255).clip(0, 255)
        upper = np.searchsorted(self._indices[:-1], position, side="right")  # node at or after position
        lower = upper - 1
        t = ((position - self._indices[lower]) / (self._indices[upper] - self._indices[lower]))[..., None]
        return (self._colors[lower] * (1 - t) + self._colors[upper] * t) / 255.0

    def palette(self, level=1.0):
        """The 256-entry 8-bit palette of the map.

        Entry ``i`` is the colour at ``clip(0.5 + level * (i / 255 - 0.5), 0, 1)``: ``level=1`` spans
        the whole map, ``level > 1`` saturates earlier (steeper around the centre), ``0 < level < 1``
        uses only the middle of the map, ``level=0`` repeats the centre colour, ``level < 0`` reverses.

        Args:
            level (float): contrast of the palette, default 1.0; any real number but NaN.

        Returns:
            numpy.ndarray: ``(256, 3)`` uint8.

        Raises:
            ValueError: ``level`` is NaN.  TypeError: ``level`` is not a real number.

        Example:
            >>> ColorMap('00f,80:fff,f00').palette(level=2.0)[0].tolist()
            [0, 0, 255]
        """
        level = _check_level(level)
        ramp = np.linspace(-1.0, 1.0, 256, dtype=np.float64) * level
        rgb = self(((ramp + 1.0) / 2.0).clip(0.0, 1.0))
        # round(12) first: 254.99999999999997 is 255, not 254
        return (rgb * 255.0).round(12).clip(0.0, 255.0).astype(np.uint8)


def _check_level(level):
    """``level`` as a Python float; TypeError / ValueError naming ``level``."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise TypeError(f"level must be a real number, got {type(level).__name__}") from None
    if value != value:
        raise ValueError("level must not be NaN")
    return value


class LazyColorMapCache:
    """Named CMSL sources, each compiled into a :class:`ColorMap` on first access and then reused.

    Errors in a source surface when its name is first looked up. Assigning a new source to a name
    that was already compiled recompiles that same :class:`ColorMap` instance in place.

    Unlike zennit's, the cache copies ``sources``, and a failed assignment to a compiled name leaves
    both its source and its map unchanged.

    Args:
        sources (dict): ``{name: CMSL source}``; copied.

    Example:
        >>> cache = LazyColorMapCache({'gray': '000,fff'})
        >>> cache['gray'] is cache['gray'], len(cache), list(cache)
        (True, 1, ['gray'])
    """

    def __init__(self, sources):
        self._sources = dict(sources)
        self._compiled = {}

    def __getitem__(self, name):
        if name not in self._sources:
            raise KeyError(f"No source for key {name}; known names: {', '.join(map(str, self._sources))}.")
        if name not in self._compiled:
            self._compiled[name] = ColorMap(self._sources[name])
        return self._compiled[name]

    def __setitem__(self, name, value):
        if name in self._compiled:
            self._compiled[name].source = value  # recompile first: a bad source changes nothing
        elif not isinstance(value, str):
            raise TypeError(f"value must be a str of CMSL, got {type(value).__name__}")
        self._sources[name] = value

    def __delitem__(self, name):
        del self._sources[name]
        self._compiled.pop(name, None)

    def __contains__(self, name):
        try:
            return name in self._sources
        except TypeError:  # unhashable: certainly not a name
            return False

    def __iter__(self):
        return iter(self._sources)

    def __len__(self):
        return len(self._sources)

    def __repr__(self):
        return f"LazyColorMapCache({self._sources!r})"
