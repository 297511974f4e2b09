from metgan.cli import main

main()
