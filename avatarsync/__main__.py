from avatarsync._entry import main

main()
