"""`python -m webhook` is `plugin-guard`."""

from webhook.cli import main

main()
