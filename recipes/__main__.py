from recipes.commands.cli import main

main()
