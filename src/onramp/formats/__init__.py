"""Pure grammars and renderers: no file, network or clock access in here."""
