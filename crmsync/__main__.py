from crmsync.cli import app

app()
