# Cycle in extends
# a extends b extends a
bottle "a" {
  extends = "b"
  image = "x"
}
bottle "b" {
  extends = "a" # HERE
}
