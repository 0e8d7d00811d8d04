from onramp.cli.app import main

main()
