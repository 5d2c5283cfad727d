// Package document is the cicd context data document: an ordered map tree
// (YAML key order is kept everywhere), its YAML and JSON codecs, dotted-path
// get and set with the original's [] and {} markers, and the merge of bases.
//
// Values in a document are: nil, bool, int, float64, string, []any and *Map.
package document
