from mmcli.cli import app

app()
