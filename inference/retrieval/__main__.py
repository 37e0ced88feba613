from inference.retrieval.cli import main

if __name__ == "__main__":
    main()
