from inference.retrieval.cli import main

main()
