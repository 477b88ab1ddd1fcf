#!/usr/bin/env python3
"""Turns a terminal screen captured with `tmux capture-pane -e -p -N` (text with SGR escape
sequences) into an HTML page that shows it as the terminal did, for a headless browser to
screenshot. Usage: ansi_to_html.py COLUMNS ROWS < screen.ansi > screen.html"""

import html
import re
import sys

# Neovim's default dark colours, for cells that keep the terminal's defaults.
DEFAULT_FG = "#e0e2ea"
DEFAULT_BG = "#14161b"
# The xterm palette for the 16 basic colours.
BASIC = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
]


def palette(n):
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (level, level, level)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.italic = self.underline = self.reverse = self.strike = False

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.reset()
            elif code == 1:
                self.bold = True
            elif code == 3:
                self.italic = True
            elif code in (4, 21):
                self.underline = True
            elif code == 7:
                self.reverse = True
            elif code == 9:
                self.strike = True
            elif code == 22:
                self.bold = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif code == 27:
                self.reverse = False
            elif code == 29:
                self.strike = False
            elif 30 <= code <= 37:
                self.fg = BASIC[code - 30]
            elif 90 <= code <= 97:
                self.fg = BASIC[code - 90 + 8]
            elif 40 <= code <= 47:
                self.bg = BASIC[code - 40]
            elif 100 <= code <= 107:
                self.bg = BASIC[code - 100 + 8]
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = palette(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = "#%02x%02x%02x" % tuple(codes[i + 2 : i + 5])
                    i += 4
                else:
                    colour = None
                if code == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1

    def css(self):
        fg, bg = self.fg or DEFAULT_FG, self.bg or DEFAULT_BG
        if self.reverse:
            fg, bg = bg, fg
        rules = ["color:" + fg, "background:" + bg]
        if self.bold:
            rules.append("font-weight:bold")
        if self.italic:
            rules.append("font-style:italic")
        decorations = [d for d, on in (("underline", self.underline), ("line-through", self.strike)) if on]
        if decorations:
            rules.append("text-decoration:" + " ".join(decorations))
        return ";".join(rules)


SGR = re.compile(r"\x1b\[([0-9;]*)m")
OTHER_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


def convert(text, columns, rows):
    style = Style()
    out = []
    for line in text.split("\n")[:rows]:
        line = OTHER_ESCAPE.sub(lambda m: m.group(0) if SGR.fullmatch(m.group(0)) else "", line)
        spans = []
        width = 0
        pos = 0
        for match in SGR.finditer(line):
            chunk = line[pos : match.start()]
            if chunk:
                spans.append('<span style="%s">%s</span>' % (style.css(), html.escape(chunk)))
                width += len(chunk)
            style.apply(match.group(1))
            pos = match.end()
        chunk = line[pos:]
        if chunk:
            spans.append('<span style="%s">%s</span>' % (style.css(), html.escape(chunk)))
            width += len(chunk)
        out.append('<div class="row">%s</div>' % "".join(spans))
    return out


def main():
    columns, rows = int(sys.argv[1]), int(sys.argv[2])
    lines = convert(sys.stdin.read(), columns, rows)
    sys.stdout.write(
        """<!doctype html>
<html><head><meta charset="utf-8"><style>
html, body { margin: 0; background: %s; }
.screen { padding: 14px 16px; font-family: 'DejaVu Sans Mono', monospace; font-size: 15px;
          line-height: 19px; color: %s; white-space: pre; font-variant-ligatures: none; }
.row { height: 19px; }
</style></head><body><div class="screen">%s</div></body></html>
"""
        % (DEFAULT_BG, DEFAULT_FG, "".join(lines))
    )


if __name__ == "__main__":
    main()
