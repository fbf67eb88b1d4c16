"""The lark grammars of flatview, installed as the package ``flatview.grammars``."""
