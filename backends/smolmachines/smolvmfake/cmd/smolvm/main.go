// Command smolvm is the fake smolvm binary for tests; see package smolvmfake.
package main

import (
	"os"

	"github.com/bottleform/bottleform/backends/smolmachines/smolvmfake"
)

func main() { os.Exit(smolvmfake.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)) }
