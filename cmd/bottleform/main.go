// Command bottleform plans and applies sandboxes for AI coding agents.
package main

import "os"

func main() { os.Exit(Main(os.Args[1:])) }
