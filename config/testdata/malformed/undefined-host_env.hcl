# Undefined host environment variable
# export NOT_SET_ANYWHERE=
bottle "a" {
  image = "x"
  env = {
    U = host_env("NOT_SET_ANYWHERE") # HERE
  }
}
