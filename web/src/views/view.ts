/** A view draws itself into `root`; the function it may return is called when the view is left. */
export type View = (root: HTMLElement, argument: string | undefined) => (() => void) | void;
