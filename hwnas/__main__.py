from hwnas.cli import main

main(prog_name="hwnas")
