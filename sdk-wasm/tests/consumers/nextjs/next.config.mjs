// Nothing for tokenrelay: a Next.js app as `create-next-app` makes it.
export default {};
