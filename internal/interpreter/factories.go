package interpreter

// BuiltinFactories maps each supported language to its kernel factory.
// TypeScript runs on the JavaScript kernel, which transpiles it.
func BuiltinFactories() map[string]Factory {
	return map[string]Factory{
		"python":     NewPythonKernel,
		"r":          NewRKernel,
		"javascript": NewNodeKernel,
		"typescript": NewNodeKernel,
		"bash":       NewBashKernel,
		"java":       NewJavaKernel,
	}
}
