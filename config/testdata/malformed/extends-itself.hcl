# Cycle in extends
# a extends a
bottle "a" {
  extends = "a" # HERE
  image = "x"
}
