from m3restore.cli import main

main()
