// Package examples holds the example configurations; its tests validate
// and plan each one and keep golden renderings of their plans.
package examples
