package pongo2

type NodeWrapper struct {
	Endtag string
	nodes  []INode
}

func (wrapper *NodeWrapper) Execute(ctx *ExecutionContext, writer TemplateWriter) *Error {
	for _, n := range wrapper.nodes {
		if err := ctx.step(nil); err != nil { // cicdstatemgr patch 8
			return err
		}
		err := n.Execute(ctx, writer)
		if err != nil {
			return err
		}
	}
	return nil
}
