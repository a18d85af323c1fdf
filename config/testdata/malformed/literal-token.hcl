# Secret values must be references
# committed to git
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = "sk-ant-oat01-xyz" # HERE
  }
}
