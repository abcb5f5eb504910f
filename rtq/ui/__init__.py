"""The faces of ``rtq live``'s error meter: the terminal screen and its keys, and JSON
lines (which load no terminal library).  Internal: the command uses them."""
