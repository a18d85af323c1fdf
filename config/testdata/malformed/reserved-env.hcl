# Reserved environment variable
# remove it
bottle "a" {
  image = "x"
  env = {
    HTTPS_PROXY = "http://evil" # HERE
  }
}
