// Package planner decides. Diff takes the desired bottles (from config), the
// prior state and one observed snapshot of the backends, and returns a Plan:
// every object's action with the reasons for it, a security summary in
// plain words, and warnings. It does no I/O and holds no context; the same
// inputs always give the same Plan.
package planner
