"""``python -m moorage.runtime [PATH]``: one instance, as the server starts it."""

from moorage.runtime.command import main

main()
