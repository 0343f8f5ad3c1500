"""Inputs for test/fixtures/tokenizer-extra-cases.json (ids come from reference.py).

Needs ftfy 6.3.1 (the version OpenAI's shared cases were made with) and regex, in a
throwaway virtualenv (Debian has no python3-ftfy):
  python3 -m venv /tmp/clipref && /tmp/clipref/bin/pip install ftfy==6.3.1 regex
  /tmp/clipref/bin/python tools/tokenizer/extra_cases.py \
      ../shared/clip/bpe_simple_vocab_16e6.txt.gz test/fixtures/tokenizer-extra-cases.json
"""
import json
import os
import subprocess
import sys
import tempfile

CASES = {
    # punctuation and contractions
    "punctuation": "Hello, world! (Really?) [yes]; {no}: <maybe> ... --- ~~~ *** ### @@@",
    "contractions": "I'm sure you're right: we've, they'd, she'll, it's, can't, won't",
    "contractions-upper": "I'M SURE YOU'RE RIGHT, JOHN'S CAT ISN'T HERE",
    "contractions-curly": "It’s John’s — don’t worry, we’ll see",
    "quote-runs": "rock 'n' roll, y'all, ''double'' and 'll alone",
    "long-s-contraction": "it'ſ a long s",
    "modifier-apostrophe": "Hawaiʻi and Hawaiʼi",
    # numbers
    "numbers-grouped": "1,000,000.50 and 3.14159265358979",
    "numbers-other": "½ ² ³ ⅷ Ⅻ ① 🄂",
    "numbers-arabic-indic": "٣٤٥ ۱۲۳ १२३",
    # emoji
    "emoji-zwj": "👩‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag",
    "emoji-flags": "🇫🇷🇯🇵🇺🇸 flags",
    "emoji-mixed-words": "pizza🍕time and 🐶dog",
    # scripts
    "accents-composed": "Crème brûlée, jalapeño, smörgåsbord, Øresund, Łódź",
    "accents-combining": "Cre\u0300me bru\u0302le\u0301e, jalapen\u0303o",
    "cjk-japanese": "日本語のテキスト、カタカナとひらがな。",
    "cjk-chinese": "我爱北京天安门，这是一只猫。",
    "korean": "안녕하세요 세계",
    "korean-jamo-nfc": "\u1100\u1161\u11a8 composed",
    "arabic": "مرحبا بالعالم، هذه قطة",
    "hebrew": "שלום עולם",
    "cyrillic": "Съешь же ещё этих мягких французских булок",
    "devanagari": "नमस्ते दुनिया, यह एक बिल्ली है",
    "thai": "สวัสดีชาวโลก",
    "greek-final-sigma": "ΣΊΣΥΦΟΣ ΟΔΟΣ",
    "turkish-dotted-i": "İSTANBUL ve ışık",
    "capital-sharp-s": "STRAẞE und Straße",
    "kelvin-and-ohm": "300 K and 5 Ω and Å",
    "math-alphanumerics": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝",
    "symbols": "™ © ® ° ± × ÷ ∑ ∫ √ ∞ ≠ ≤ → ← ★ ♥ ♪",
    # HTML entities
    "html-double-escaped": "fish &amp;amp; chips &amp;lt;3",
    "html-lt-gt": "&lt;b&gt;bold&lt;/b&gt;",
    "html-numeric": "it&#39;s &#x27;quoted&#x27; &#8220;curly&#8221;",
    "html-no-semicolon": "caf&eacute au lait &amp more &copy 2021",
    "html-uppercase": "P&EACUTE;REZ and BUNDESSTRA&SZLIG;E",
    "html-curly-entities": "&ldquo;quoted&rdquo; and &lsquo;single&rsquo;",
    "html-with-tag": "<b>&ldquo;tag&rdquo;</b> &amp;amp;",
    "html-tag-then-line": "a <b> tag\n&ldquo;next line&rdquo; &EACUTE;",
    "html-cp1252-refs": "&#128; &#150; &#153; &#129;",
    "html-invalid-refs": "a&#0;b&#7;c&#xD800;d&#1114112;e&#xFFFF;f&#13;g",
    "html-not-entities": "AT&T, this&not that, &notit; &hellip &unknown;",
    "html-ampersand-chain": "&amp;amp;amp;amp; done",
    # mojibake
    "mojibake-cafe": "cafÃ© and naÃ¯ve",
    "mojibake-apostrophe": "donâ€™t stop, itâ€™s fine",
    "mojibake-quotes": "â€œquotedâ€\x9d text",
    "mojibake-emoji": "ðŸ˜€ smile",
    "mojibake-double": "cafÃƒÂ©",
    "mojibake-a0": "voilÃ le travail",
    "mojibake-latin1-only": "Ã¼ber Ã©tÃ©",
    "mojibake-mixed-with-good": "café and cafÃ©",
    "mojibake-lossy": "cafÃ\ufffd ok",
    "cp1252-lookalike": "Â£5 and Ã— times",
    "mojibake-polish": "ZaÅ¼Ã³Å‚Ä‡ gÄ™Å›lÄ… jaÅºÅ„",
    "mojibake-russian": "Ð¡ÑŠÐµÑˆÑŒ Ð¶Ðµ ÐµÑ‰Ñ‘ ÑÑ‚Ð¸Ñ…",
    "mojibake-cjk": "æ—¥æœ¬èªžã®ãƒ†ã‚­ã‚¹ãƒˆ",
    "mojibake-in-one-word": "naïve façade rÃ©sumÃ© today",
    "mojibake-nbsp-lost": "25Â Â°C",
    "not-mojibake-capitals": "JOSÉ’S CAFÉ — «OUVERT» ÉCOLE—NORMALE",
    "not-mojibake-nbsp": "CAFÉ\u00a0! Straße–Weg Größe… Ñ—",
    "not-mojibake-portuguese": "SÃO PAULO, São João, FALCÃO",
    # width and ligatures
    "fullwidth": "ＡＢＣ　ｘｙｚ　１２３！？",
    "halfwidth-katakana": "ｶﾀｶﾅ Ｕﾀｰﾝ ﾊﾟﾝ",
    "halfwidth-hangul-and-symbols": "ﾡﾢ ￠￡￥ ￩￪",
    "ligatures": "eﬃcient ﬂoor ﬆar ﬅ ĳsel ǆungla Ǌ",
    # control and format characters
    "control-c0": "a\x00b\x07c\x1bd\x7fe",
    "control-c1": "x\x80y\x85z\x81w\x9fv",
    "terminal-escapes": "\x1b[31mred\x1b[0m and \x1b[1;4mbold\x1b[0m",
    "format-chars": "zero\u200bwidth soft\u00adhyphen bom\ufeffhere\u2066iso\u2069 rtl\u200fmark",
    "interlinear": "obj\ufffcect \ufff9ann\ufffb",
    "line-breaks": "a\r\nb\rc\u2028d\u2029e\x85f",
    "tabs-vertical": "a\tb\x0bc\x0cd",
    "nbsp-and-spaces": "a\u00a0b\u2003c\u3000d\u202fe\u1680f",
    "replacement-char": "broken \ufffd char",
    # special tokens
    "special-tokens": "<|startoftext|>hello<|endoftext|>",
    "special-tokens-upper": "<|ENDOFTEXT|> shouting",
    "special-tokens-partial": "<|startof text|> <|end|>",
    # BPE stress
    "long-word": "a" * 60,
    "long-mixed-piece": "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "url": "https://www.example.com/some/path?query=value&other=1#fragment",
    "hashtags-mentions": "#MachineLearning #AI @OpenAI_bot",
    "code": "def f(x): return x**2 + 1 // comment",
    # lengths
    "empty": "",
    "whitespace-only": "   \t\n  \u3000 ",
    "only-controls": "\x00\x01\x02",
    "long-truncated": " ".join(["word"] * 100),
    "long-truncated-mixed": "a photo of " * 30,
    "exactly-context": " ".join(["word"] * 75),
    "one-over-context": " ".join(["word"] * 76),
    "long-emoji": "🙂" * 40,
}


def main():
    merges, out = sys.argv[1:3]
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump([{"name": k, "text": v} for k, v in CASES.items()], f, ensure_ascii=False)
    subprocess.run([sys.executable, os.path.join(here, "reference.py"), merges, f.name, out], check=True)
    os.unlink(f.name)


if __name__ == "__main__":
    main()
