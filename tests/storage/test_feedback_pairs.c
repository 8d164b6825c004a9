/* placeholder while its owner writes it. */
int main(void) { return 0; }
