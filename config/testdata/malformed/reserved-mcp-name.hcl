# Reserved MCP server name
# supervise = true
bottle "a" {
  image = "x"
  mcp "supervise" { # HERE
    url = "https://x/mcp"
  }
}
