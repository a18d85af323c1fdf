# Unknown role
# reserved
bottle "a" {
  image = "x"
  egress "api.github.com" {
    role = "claude_code_oauth" # HERE
  }
}
