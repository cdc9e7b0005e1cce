// Nothing for tokenrelay: the package's exports pick the browser, Node and
// edge entries by themselves.
export default {};
